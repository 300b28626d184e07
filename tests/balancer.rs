//! Two `ferryd` nodes sharing one root and one identity behind a real HAProxy (Debian's
//! package; its absence fails the suite): clients through it see one server, the nodes see
//! the real client (PROXY protocol v2 from `--trusted-proxy` only), SHUTDOWN through it is
//! refused, and a drained node drops out of the balance.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use ferry_core::{ErrorKind, WireError};
use ferry_tests::{
    Balancer, Daemon, bin, connect_from, greet_from, loopback, run, tcp_from, text, wait_until,
};
use tempfile::TempDir;

/// Where HAProxy connects to the nodes from: the only address they trust.
const PROXY: u8 = 2;

/// Two nodes on one root and one identity, behind HAProxy.
struct Cluster {
    nodes: [Daemon; 2],
    balancer: Balancer,
    shared: TempDir,
}

fn cluster(extra: &[&str]) -> Cluster {
    let shared = tempfile::tempdir().unwrap();
    let node = || node(shared.path(), extra);
    // One after the other: the first makes the identity the second loads.
    let nodes = [node(), node()];
    assert_eq!(nodes[0].fingerprint, nodes[1].fingerprint, "one identity");
    let balancer = Balancer::start(&[nodes[0].addr, nodes[1].addr], loopback(PROXY));
    Cluster {
        nodes,
        balancer,
        shared,
    }
}

/// A node serving `shared/data` as `shared/identity.pem`, trusting 127.0.0.`PROXY`.
fn node(shared: &Path, extra: &[&str]) -> Daemon {
    let root = shared.join("data");
    let identity = shared.join("identity.pem");
    let proxy = loopback(PROXY).to_string();
    let mut args = vec![
        "--root",
        root.to_str().unwrap(),
        "--port-file",
        "port",
        "--identity",
        identity.to_str().unwrap(),
        "--trusted-proxy",
        &proxy,
    ];
    args.extend_from_slice(extra);
    Daemon::start_raw(&args)
}

impl Cluster {
    /// Runs the real `ferry` through the balancer with `-c command`; its stdout.
    fn ferry(&self, command: &str) -> String {
        let client = self.shared.path().join("client");
        std::fs::create_dir_all(&client).unwrap();
        let mut cmd = Command::new(bin("ferry"));
        cmd.env_remove("FERRY_TOKEN")
            .env("XDG_DATA_HOME", self.shared.path().join("xdg"))
            .current_dir(&client)
            .args(["-q", "--fingerprint", self.nodes[0].fingerprint.as_str()])
            .arg(self.balancer.addr.to_string())
            .args(["-c", command]);
        let output = run(cmd, b"");
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{command}: {stderr}");
        stdout
    }

    fn logs(&self) -> String {
        self.nodes[0].log() + &self.nodes[1].log()
    }
}

#[test]
fn clients_through_haproxy_see_one_server_and_the_nodes_see_them() {
    let cluster = cluster(&[]);
    let client = cluster.shared.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    std::fs::write(client.join("one.txt"), b"first").unwrap();
    std::fs::write(client.join("two.txt"), b"second").unwrap();
    // Round robin: each run lands on the other node.
    cluster.ferry("UPLOAD one.txt");
    cluster.ferry("UPLOAD two.txt");
    for _ in 0..2 {
        let listed = cluster.ferry("LIST");
        assert!(
            listed.contains("one.txt") && listed.contains("two.txt"),
            "{listed}"
        );
    }
    std::fs::remove_file(client.join("one.txt")).unwrap();
    cluster.ferry("DOWNLOAD one.txt");
    assert_eq!(std::fs::read(client.join("one.txt")).unwrap(), b"first");
    for node in &cluster.nodes {
        let log = node.log();
        assert!(
            log.contains(" UPLOAD '/"),
            "each node took an upload: {log}"
        );
        // The client's address, 127.0.0.1, not the balancer's 127.0.0.2.
        assert!(log.contains(" 127.0.0.1:"), "{log}");
        for line in log.lines().filter(|l| l.contains(" UPLOAD ")) {
            assert!(line.contains(" 127.0.0.1:"), "{line}");
        }
        assert!(
            log.contains(" connected through trusted proxy 127.0.0.2:"),
            "{log}"
        );
        // HAProxy's health checks (LOCAL headers, a greeting, a reset) leave no lines.
        for line in log.lines().filter(|l| l.contains(" 127.0.0.2:")) {
            assert!(line.contains("connected through trusted proxy"), "{line}");
        }
    }
}

#[test]
fn the_per_address_cap_applies_to_the_real_client() {
    let cluster = cluster(&["--max-per-address", "2"]);
    let haproxy = cluster.balancer.addr;
    // Two places on each node for 127.0.0.7, though every connection comes from 127.0.0.2.
    let held: Vec<_> = (0..6)
        .filter_map(|_| greet_from(loopback(7), haproxy).ok())
        .collect();
    assert_eq!(held.len(), 4, "{}", cluster.logs());
    let logs = cluster.logs();
    assert!(
        logs.contains(" refused: server busy: 2 connections from 127.0.0.7,"),
        "{logs}"
    );
    // Another client, through the same balancer, still gets in.
    let mut other = connect_from(loopback(8), haproxy);
    other.call(["LIST", "/"]).unwrap();
    assert!(cluster.logs().contains(" 127.0.0.8:"));
}

#[test]
fn shutdown_through_haproxy_is_refused_and_both_nodes_keep_serving() {
    let cluster = cluster(&[]);
    for _ in 0..2 {
        let mut conn = connect_from(loopback(7), cluster.balancer.addr);
        let Err(WireError::Remote(failure)) = conn.call(["SHUTDOWN"]) else {
            panic!("SHUTDOWN through haproxy was not refused");
        };
        assert_eq!(failure.kind, ErrorKind::Forbidden);
        assert_eq!(
            failure.message,
            "SHUTDOWN is refused through a load balancer; send it to the node directly"
        );
        conn.call(["LIST", "/"]).unwrap();
    }
    let logs = cluster.logs();
    assert_eq!(
        logs.matches("SHUTDOWN: SHUTDOWN is refused").count(),
        2,
        "{logs}"
    );
    for node in &cluster.nodes {
        node.connect().call(["LIST", "/"]).unwrap();
    }
    // Sent to a node directly, as before.
    let mut direct = cluster.nodes[0].connect();
    direct.call(["SHUTDOWN"]).unwrap();
    let mut nodes = cluster.nodes;
    assert!(nodes[0].wait().success());
    nodes[1].connect().call(["LIST", "/"]).unwrap();
}

/// A PROXY v2 header for a TCP/IPv4 client at 10.9.9.9:4000.
fn header(client: [u8; 4]) -> Vec<u8> {
    let mut bytes = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    bytes.extend(client);
    bytes.extend([127, 0, 0, 1, 0x0f, 0xa0, 0x01, 0xbb]);
    bytes
}

#[test]
fn only_a_trusted_proxy_may_say_who_the_client_is() {
    let shared = tempfile::tempdir().unwrap();
    let node = node(shared.path(), &["--handshake-timeout", "1"]);
    // From elsewhere, a header is garbage before TLS: refused as any would be.
    let mut stream = tcp_from(loopback(7), node.addr).unwrap();
    stream.write_all(&header([10, 9, 9, 9])).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    wait_until("the refusal logged", || {
        node.log().contains("127.0.0.7:") && node.log().contains("disconnected: handshake failed")
    });
    // From the trusted proxy, the header is required: anything else is refused, and silence
    // ends with the handshake timeout.
    let mut stream = tcp_from(loopback(PROXY), node.addr).unwrap();
    stream.write_all(&[0x16; 16]).unwrap();
    let _ = stream.read_to_end(&mut rest);
    assert!(greet_from(loopback(PROXY), node.addr).is_err());
    wait_until("the missing header logged", || {
        let log = node.log();
        log.contains("disconnected: no PROXY protocol v2 header from a trusted proxy")
            && log.contains("disconnected: PROXY header timeout")
    });
    assert!(!node.log().contains("10.9.9.9"), "{}", node.log());
    // ...and names the client, for the log and everything else.
    let mut stream = tcp_from(loopback(PROXY), node.addr).unwrap();
    stream.write_all(&header([10, 9, 9, 9])).unwrap();
    let deadline = std::time::Instant::now() + ferry_tests::DEADLINE;
    let (mut conn, _) =
        ferry_core::hello::connect_trusting(stream, "tests", None, deadline).unwrap();
    conn.call(["MKDIR", "/made"]).unwrap();
    let log = node.log();
    assert!(
        log.contains(" 10.9.9.9:4000 connected through trusted proxy 127.0.0.2:"),
        "{log}"
    );
    assert!(log.contains(" 10.9.9.9:4000 MKDIR '/made'"), "{log}");
}

#[test]
fn a_drained_node_fails_its_health_check_and_drops_out() {
    let cluster = cluster(&[]);
    let mut idle = cluster.nodes[0].connect();
    cluster.nodes[0].signal("-USR1");
    wait_until("the drain logged", || {
        cluster.nodes[0].log().contains("draining:")
    });
    let Err(refused) = greet_from(loopback(1), cluster.nodes[0].addr) else {
        panic!("a draining node took a session");
    };
    assert!(format!("{refused:#}").contains("draining"), "{refused:#}");
    // Its idle session is closed; clients go elsewhere.
    assert!(idle.call(["LIST", "/"]).is_err());
    let mut in_a_row = 0;
    wait_until("haproxy to take the drained node out", || {
        match greet_from(loopback(7), cluster.balancer.addr) {
            Ok(_) => in_a_row += 1,
            Err(_) => in_a_row = 0,
        }
        in_a_row >= 4
    });
    // The node keeps running, refusing, until it is stopped.
    assert!(greet_from(loopback(1), cluster.nodes[0].addr).is_err());
}

#[test]
fn a_transfer_in_flight_finishes_while_its_node_drains() {
    let node = Daemon::start(&["--grace", "30"]);
    std::fs::File::create(node.client_dir().join("big"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let out = node.held_during_upload("UPLOAD big", || {
        node.signal("-USR1");
        wait_until("the drain to begin", || {
            node.log().contains("draining: 1 clients, 1 busy")
        });
        assert!(
            greet_from(loopback(1), node.addr).is_err(),
            "new sessions refused"
        );
    });
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let size = std::fs::metadata(node.root().join("big")).unwrap().len();
    assert_eq!(size, 64 << 20);
    wait_until("the session to end", || {
        node.log().contains(" disconnected: ")
    });
    let log = node.log();
    assert!(log.contains(" disconnected: server draining"), "{log}");
}

#[test]
fn a_part_cut_off_through_haproxy_belongs_to_the_real_client() {
    let cluster = cluster(&[]);
    let start = vec![7; 64 * 1024];
    ferry_tests::flood::cut_off(
        (loopback(7), cluster.balancer.addr),
        "/cut.bin",
        4 << 20,
        &start,
    )
    .unwrap();
    wait_until("the part kept", || {
        cluster.logs().contains("bytes for resuming")
    });
    let mut cmd = Command::new(bin("ferryd"));
    cmd.arg("--root")
        .arg(cluster.shared.path().join("data"))
        .arg("--list-partials");
    let out = run(cmd, b"");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.ends_with("/cut.bin"))
        .expect(&stdout);
    assert_eq!(
        line.split_whitespace().nth(2),
        Some("127.0.0.7"),
        "{stdout}"
    );
}
