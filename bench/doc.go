// Package bench holds hookline's end-to-end benchmarks; the code is in its
// test files. `make bench` runs them once and prints one table of numbers
// measured in that run: hookline next to a bare baseline on the same broker,
// as ratios. Targets are printed, never asserted. See docs/benchmarks.md.
package bench
