//! The flags of the `activity` binary, in the order of its `--help`: the tests of the
//! binary and of its `--help` output check that each has a line of its own there.

/// Every flag the docs, scripts and tests pass, `--help` last.
pub(crate) const FLAGS: [&str; 18] = [
    "--port",
    "--host",
    "--data-dir",
    "--rate",
    "--events",
    "--seed",
    "--start-time",
    "--speedup",
    "--wait-for-instances",
    "--replay",
    "--record",
    "--no-generate",
    "--partitions",
    "--threads",
    "--bootstrap-servers",
    "--exit-when-done",
    "--set",
    "--help",
];
