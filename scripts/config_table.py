"""Print the config reference table (Markdown) for the README from the checked keys themselves."""

from mpigrad.config import KEYS, key_help


def main():
    print("| key | default | meaning |")
    print("|---|---|---|")
    for key, spec in KEYS.items():
        default = str(spec.default).lower() if isinstance(spec.default, bool) else repr(spec.default)
        print(f"| `{key}` | `{default}` | {key_help(key)} |")


if __name__ == "__main__":
    main()
