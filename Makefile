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

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed

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

# The package is linted and type-checked before the tests run (ruff, mypy).
test: venv debs
	$(BIN)/ruff check timewatch tests bench
	$(BIN)/mypy timewatch
	$(BIN)/python -m pytest -q tests

bench: venv debs
	$(BIN)/python -m bench

# Bounded fuzzing of every decoder of outside input (framer, NMEA, UBX, NTP, NTS, trace line,
# config, gpsd, chronyc): FUZZ_SECONDS per target (default 20), atheris where it is installed,
# else hypothesis. Prints inputs and time per target; a crash input goes to fuzz-crashes/.
fuzz: venv
	$(BIN)/python tools/fuzz.py

# Optional: the replay/engine core compiled with mypyc (same source, as mypy and black ship theirs;
# needs gcc and the Python headers). `make clean-compiled` goes back to the pure-Python package.
compiled: venv
	$(BIN)/python tools/build_compiled.py

clean-compiled:
	$(PYTHON) tools/build_compiled.py clean

clean: clean-compiled
	rm -rf $(VENV) state .pytest_cache .mypy_cache .ruff_cache fuzz-crashes
