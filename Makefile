# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the tests start for real (chronyd, libfaketime, VictoriaMetrics, InfluxDB 1.x,
# certtool for NTS, gpsd/gpsfake, systemd-analyze, socat, headless chromium for the status page,
# promtool from prometheus: only the checker runs, never a Prometheus server; curl and openssl for
# the API's TLS and the installer's evidence key; linuxptp and ethtool for the PTP tests' own
# network).
DEBS := chrony faketime socat victoria-metrics influxdb gnutls-bin gpsd gpsd-clients systemd gcc python3-dev chromium chromium-driver prometheus curl openssl linuxptp ethtool

.PHONY: demo test bench fuzz lint debs venv clean compiled clean-compiled

# The install compiles the engine, the codecs and the trace reader with mypyc (setup.py's build
# hook) when gcc and the Python headers are there, else installs pure Python; a source edited
# since is recompiled before the demo and the tests (`tools/build_compiled.py auto`), and
# `timewatch --version` says which engine runs. TIMEWATCH_PURE=1 make ... keeps pure Python.
COMPILED_SRC := timewatch/trace.py $(shell find timewatch/engine timewatch/wire -name '*.py' ! -name __init__.py)

$(BIN)/.installed: pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

$(BIN)/.compiled: $(BIN)/.installed $(COMPILED_SRC)
	$(BIN)/python tools/build_compiled.py auto
	$(BIN)/timewatch --version
	touch $@

venv: $(BIN)/.compiled

# Installs the Debian packages the tests use when they are missing and we are root.
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	    case " $$missing " in *" prometheus "*) systemctl disable --now prometheus >/dev/null 2>&1 || true ;; esac; \
	  else echo "not root: tests needing$$missing will be skipped"; fi; \
	fi

demo: venv
	$(BIN)/timewatch demo

lint: venv
	$(BIN)/ruff check timewatch tests bench
	$(BIN)/mypy timewatch

# The package is linted and type-checked before the tests run (ruff, mypy). The Debian packages
# come first: gcc and python3-dev let the install compile the engine.
test: debs venv
	$(BIN)/ruff check timewatch tests bench
	$(BIN)/mypy timewatch
	$(BIN)/python -m pytest -q tests

bench: debs venv
	$(BIN)/python -m bench

# Bounded fuzzing of every decoder of outside input (framer, NMEA, UBX, NTP, NTS, trace line,
# config, gpsd, chronyc): FUZZ_SECONDS per target (default 20), atheris where it is installed,
# else hypothesis. Prints inputs and time per target; a crash input goes to fuzz-crashes/.
fuzz: venv
	$(BIN)/python tools/fuzz.py

# The engine compiled again now (`make venv` does it when a source changed); `make clean-compiled`
# goes back to the pure-Python package (until the next source edit: TIMEWATCH_PURE=1 to stay).
compiled: venv
	$(BIN)/python tools/build_compiled.py

clean-compiled:
	$(PYTHON) tools/build_compiled.py clean

clean: clean-compiled
	rm -rf $(VENV) state .pytest_cache .mypy_cache .ruff_cache fuzz-crashes
