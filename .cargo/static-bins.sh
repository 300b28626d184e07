#!/usr/bin/env bash
# Cargo runs rustc through this script (.cargo/config.toml). On Linux it links every program
# (ferry, ferryd, the bench, build scripts) as a static PIE: a dynamically linked ferry spent
# about half of each start (0.5 ms of CPU) in the loader, mapping and relocating libc,
# libgcc_s and libm, and in libgcc_s's CPU probe, whose CPUID instructions cost the VM
# several microseconds each. Address randomisation is kept (a static PIE is still a PIE).
#
# The flag cannot go in `rustflags`: without `--target`, cargo gives those to proc-macro crates
# too, which cannot be built against a static C library. Here it is added only where rustc
# makes a program alone (one `--crate-type bin`, no `--print` query), and never with a
# sanitizer (cargo-fuzz), which needs the dynamic C library.
#
# bash, not sh: dash drops environment variables whose names are not shell names, such as
# the CARGO_BIN_EXE_ferry-bench that cargo gives the tests.
rustc="$1"
shift
case " $* " in
*" --print"* | *sanitizer* | *" --crate-type proc-macro "*) exec "$rustc" "$@" ;;
*" --crate-type bin "*) ;;
*) exec "$rustc" "$@" ;;
esac
case " $* " in
*" --target "*linux* | *" --target="*linux*) ;;
*" --target"*) exec "$rustc" "$@" ;;
*) [ "$(uname -s)" = Linux ] || exec "$rustc" "$@" ;;
esac
exec "$rustc" "$@" -C target-feature=+crt-static
