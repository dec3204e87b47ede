// Module wggo builds the stock wireguard-go binary the datapath benchmark
// (test/bench) runs as its reference, at exactly the version crosswire links
// (the root go.mod's golang.zx2c4.com/wireguard). A separate module so the
// binary's build never changes the root module's dependency graph.
// golang.org/x/crypto, x/net and x/sys are pinned to the root module's
// versions too, so the reference runs the same ciphers and syscalls as the
// agent: only the wrapping differs (build.sh checks all four).
module github.com/crosswire/crosswire/test/tools/wggo

go 1.26.0

require golang.zx2c4.com/wireguard v0.0.0-20260522210424-ecfc5a8d5446

require (
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.zx2c4.com/wintun v0.0.0-20230126152724-0fa3db229ce2 // indirect
)
