//! A real HAProxy (Debian's package) in front of `ferryd` nodes, run in the foreground as a
//! child: `mode tcp`, round robin, the PROXY protocol v2 to every node, from a chosen source
//! address, and a health check that wants the greeting's `H`.

use std::fs;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use crate::{greet_from, loopback, wait_until};

/// A running `haproxy -db`, killed on drop.
pub struct Balancer {
    child: Child,
    /// Where clients reach it.
    pub addr: SocketAddr,
    /// Its configuration and its stderr.
    pub dir: TempDir,
}

/// The `haproxy` binary: on PATH, or where Debian puts it. Missing is a failure, not a skip:
/// CI installs it.
pub fn haproxy() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|bin| bin.is_file())
        .expect("haproxy is not installed (apt-get install haproxy); the balancer suite needs it")
}

impl Balancer {
    /// Starts HAProxy on 127.0.0.1 (a port the OS had free), balancing `nodes` and connecting
    /// to them from `source`; waits until it answers with a node's greeting.
    pub fn start(nodes: &[SocketAddr], source: IpAddr) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        // HAProxy cannot report a port it picked: take one the OS had free just now.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = dir.path().join("haproxy.cfg");
        fs::write(&config, configuration(addr, nodes, source)).unwrap();
        let stderr = fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new(haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut balancer = Balancer { child, addr, dir };
        wait_until("haproxy to pass a greeting on", || {
            if let Ok(Some(status)) = balancer.child.try_wait() {
                panic!("haproxy exited ({status}): {}", balancer.log());
            }
            greet_from(loopback(1), addr).is_ok()
        });
        balancer
    }

    /// What HAProxy wrote to stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration: the one documented in the README's "Behind a load balancer", with
/// quicker checks, each given long enough that a loaded machine does not fail a node.
fn configuration(addr: SocketAddr, nodes: &[SocketAddr], source: IpAddr) -> String {
    let mut text = format!(
        "global\n    maxconn 256\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    \
         timeout server 60s\n    timeout check 5s\n\
         frontend ferry\n    bind {addr}\n    default_backend nodes\n\
         backend nodes\n    balance roundrobin\n    source {source}\n    \
         option tcp-check\n    tcp-check connect default\n    tcp-check expect rbinary ^48\n"
    );
    for (i, node) in nodes.iter().enumerate() {
        text.push_str(&format!(
            "    server node{i} {node} send-proxy-v2 check inter 100ms fall 2 rise 2\n"
        ));
    }
    text
}
