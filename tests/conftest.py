"""Makes tests/ importable so every test folder shares launch.py (subprocess mpiexec with a timeout)."""
