// Package benchplot holds what the benchmark programs' plots (test/bench,
// test/scale) share: the page, its header, the tick marker and the PNG
// output, and the checks their tests make on a written PNG.
package benchplot
