// Package ociimage builds crosswire's container image without Docker: a
// FROM-scratch image holding one static binary at /usr/local/bin/crosswire,
// for linux/amd64 and linux/arm64, as an OCI image index.
//
// The build is reproducible: the same source, Go toolchain and Options give
// the same index digest. Every timestamp is Options.Created, tar entries
// are sorted with uid/gid 0 and fixed modes, the binary is built with
// -trimpath, without VCS stamping and with fixed GOAMD64/GOARM64 levels,
// and gzip output depends only on its input. The version and revision are
// stamped into the binary (`crosswire version`) and the OCI labels, so two
// versions of one commit differ in digest.
//
// Build returns a v1.ImageIndex; WriteLayout and WriteTarball write it as an
// OCI image layout (a directory, or the same as one tar file that
// `ctr images import`, `kind load image-archive` and `k3d image import`
// accept) and Push sends it to a registry.
package ociimage
