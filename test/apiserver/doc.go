// Package apiserver runs a real kube-apiserver backed by a real etcd for
// integration tests, so controller code is exercised against the API
// server's actual semantics (RBAC, admission, resourceVersions, watch
// bookmarks, conflicts, outages) instead of only a fake clientset.
//
// The binaries are built from source by test/tools/build.sh into a cache
// directory keyed by version (see DefaultToolsDir); Start fails the test with
// the command to run when they are missing.
//
// Authentication uses client certificates signed by a CA the package
// generates per server: AddUser mints a certificate for any user and groups
// at any time, with no restart. Authorization is Node,RBAC, so a new user is
// denied everything until the test binds it a role.
//
// Programs outside tests (the demo) use Launch instead of Start: an explicit
// directory, optionally processes that outlive the caller (Detached), and
// later processes find the server again with Attach and stop it with
// StopDir, both by that directory alone.
package apiserver
