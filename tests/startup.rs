//! Start-up: on Linux the programs are static PIEs (`.cargo/static-bins.sh`), which start
//! without the dynamic loader, keep address randomisation, and still find a server by its
//! host name through the C library's resolver.

use std::fs;
use std::io::Read;
use std::path::Path;

use ferry_tests::{Daemon, text};

/// Set when cargo built these programs through `.cargo/static-bins.sh` (tests/build.rs asks
/// cargo which wrapper it runs); with another wrapper in its place (sccache, say) they are
/// linked dynamically, as before, and only the resolver test applies.
const STATIC: Option<&str> = option_env!("FERRY_STATIC_BINS");

/// What an ELF program's headers say about how it is loaded.
#[derive(Debug, PartialEq)]
struct Loading {
    /// It names a program interpreter (`PT_INTERP`): the dynamic loader maps its libraries.
    interpreter: bool,
    /// It is position-independent (`ET_DYN`), so the kernel places it at a random address.
    position_independent: bool,
}

/// Reads the ELF header and program headers (64-bit, little-endian) at the start of `path`.
fn loading(path: &Path) -> Loading {
    let mut head = vec![0u8; 4096];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(
        &head[..6],
        b"\x7fELF\x02\x01",
        "{}: 64-bit LSB ELF",
        path.display()
    );
    let field = |at: usize, len: usize| {
        let mut bytes = [0u8; 8];
        bytes[..len].copy_from_slice(&head[at..at + len]);
        u64::from_le_bytes(bytes) as usize
    };
    let (kind, table, entry, count) = (
        field(0x10, 2),
        field(0x20, 8),
        field(0x36, 2),
        field(0x38, 2),
    );
    assert!(
        table + entry * count <= head.len(),
        "program headers near the start"
    );
    const PT_INTERP: usize = 3;
    const ET_DYN: usize = 3;
    Loading {
        interpreter: (0..count).any(|i| field(table + i * entry, 4) == PT_INTERP),
        position_independent: kind == ET_DYN,
    }
}

/// Static without the loader when built through the wrapper, dynamic (with it) otherwise;
/// position-independent either way. Either build checks something: a wrapper that stopped
/// linking statically, or a static link where none was asked for, fails.
#[cfg(target_os = "linux")]
#[test]
fn the_programs_start_without_the_dynamic_loader_when_built_static() {
    let wanted = Loading {
        interpreter: STATIC.is_none(),
        position_independent: true,
    };
    for name in ["ferry", "ferryd"] {
        assert_eq!(
            loading(&ferry_tests::bin(name)),
            wanted,
            "{name} (FERRY_STATIC_BINS {STATIC:?})"
        );
    }
}

#[test]
fn a_client_finds_its_server_by_host_name() {
    let server = Daemon::start(&[]);
    fs::write(server.root().join("a b.txt"), "by name").unwrap();
    let target = format!("localhost:{}", server.addr.port());
    let fingerprint = server.fingerprint.to_string();
    let args = [target.as_str(), "--fingerprint", &fingerprint, "-c", "LIST"];
    let out = server.script(&args, "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("a b.txt"), "{stdout}");
}
