//! Pipelined downloads committed in groups (`ferry_core::batch::land`): every file arrives
//! whole, and a failure part-way leaves each file either in place and reported, or not under
//! its final name at all.

use std::fs;
use std::io::Write;
use std::path::Path;

use ferry_core::{Frame, Kind};
use ferry_tests::{Daemon, Fake, names_in, random_bytes, text};

/// `count` files of sizes up to about 20 KiB (some too large to go ahead) in `dir`.
fn make_files(dir: &Path, count: usize) -> Vec<(String, Vec<u8>)> {
    fs::create_dir_all(dir).unwrap();
    (0..count)
        .map(|i| {
            let name = format!("f é {i:03}");
            let content = random_bytes(i * 67 % 20_000);
            fs::write(dir.join(&name), &content).unwrap();
            (name, content)
        })
        .collect()
}

/// The hidden partial files below `dir`.
fn partials(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".ferry-"))
        .collect()
}

#[test]
fn a_script_of_downloads_lands_every_file_whole_and_reports_each_once() {
    let server = Daemon::start(&[]);
    let files = make_files(&server.root(), 300);
    let script: String = files
        .iter()
        .map(|(name, _)| format!("DOWNLOAD '{name}' got/\n"))
        .collect();
    let out = server.script(&["--json"], &script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let got = server.client_dir().join("got");
    for (name, content) in &files {
        assert_eq!(&fs::read(got.join(name)).unwrap(), content, "{name}");
    }
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let reported: Vec<_> = lines.iter().map(|l| l["local"].as_str().unwrap()).collect();
    let expected: Vec<_> = files
        .iter()
        .map(|(name, _)| format!("got/{name}"))
        .collect();
    assert!(
        reported == expected,
        "one line per file, in order: {stdout}"
    );
    assert!(partials(&got).is_empty());
}

#[test]
fn a_script_downloading_to_one_destination_twice_gets_the_second() {
    let server = Daemon::start(&[]);
    fs::write(server.root().join("a"), b"first").unwrap();
    fs::write(server.root().join("b"), b"second").unwrap();
    let script = "DOWNLOAD a got/x\nDOWNLOAD a got/x\nDOWNLOAD b got/x\nDOWNLOAD a got/y\n";
    fs::create_dir(server.client_dir().join("got")).unwrap();
    let out = server.script(&[], script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.matches("downloaded").count(), 4, "{stdout}");
    let got = server.client_dir().join("got");
    assert_eq!(fs::read(got.join("x")).unwrap(), b"second");
    assert_eq!(fs::read(got.join("y")).unwrap(), b"first");
}

#[test]
fn one_destination_spelt_several_ways_in_a_script_gets_the_last_download() {
    let server = Daemon::start(&[]);
    fs::write(server.root().join("a"), b"first").unwrap();
    fs::write(server.root().join("b"), b"second").unwrap();
    let got = server.client_dir().join("got");
    fs::create_dir(&got).unwrap();
    std::os::unix::fs::symlink(&got, server.client_dir().join("link")).unwrap();
    // The same file as `got/x`, `./got/x`, through a link, and by its absolute path: each
    // download after the first waits for the one before it to land.
    let absolute = got.join("x");
    let script = format!(
        "DOWNLOAD a got/x\nDOWNLOAD b ./got/x\nDOWNLOAD a link/x\nDOWNLOAD b '{}'\nDOWNLOAD a got/y\n",
        absolute.display()
    );
    let out = server.script(&[], &script);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.matches("downloaded").count(), 5, "{stdout}");
    assert_eq!(fs::read(got.join("x")).unwrap(), b"second");
    assert_eq!(fs::read(got.join("y")).unwrap(), b"first");
    assert!(partials(&got).is_empty());
}

#[test]
fn a_recursive_download_of_many_groups_lands_every_file_whole() {
    let server = Daemon::start(&[]);
    let one = make_files(&server.root().join("tree/one"), 200);
    let two = make_files(&server.root().join("tree/two/deeper"), 150);
    let out = server.script(&["-c", "DOWNLOAD -r tree back"], "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("downloaded 350 files"), "{stdout}");
    let back = server.client_dir().join("back");
    for (dir, files) in [("one", &one), ("two/deeper", &two)] {
        for (name, content) in files {
            assert_eq!(&fs::read(back.join(dir).join(name)).unwrap(), content);
        }
    }
    assert!(partials(&back).is_empty());
}

#[test]
fn a_destination_that_cannot_be_renamed_into_stops_the_script_there_and_no_later_file_lands() {
    let server = Daemon::start(&[]);
    for name in ["a", "b", "c"] {
        fs::write(server.root().join(name), name.repeat(100)).unwrap();
    }
    // `b` would replace a directory that is not empty: its rename fails.
    fs::create_dir_all(server.client_dir().join("got/b/inside")).unwrap();
    let script = "DOWNLOAD a got/\nDOWNLOAD b got/\nDOWNLOAD c got/\n";
    let out = server.script(&[], script);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("downloaded 'a'"), "{stdout}");
    assert!(
        !stdout.contains("'b'") && !stdout.contains("'c'"),
        "{stdout}"
    );
    assert!(
        stderr.contains("error: line 2: downloading 'b': cannot replace"),
        "{stderr}"
    );
    let got = server.client_dir().join("got");
    assert_eq!(fs::read(got.join("a")).unwrap(), b"a".repeat(100));
    assert!(got.join("b/inside").is_dir());
    assert!(!got.join("c").exists(), "nothing after the failure lands");
    assert!(partials(&got).is_empty());
}

#[test]
fn a_recursive_download_that_fails_part_way_says_how_many_files_landed() {
    let server = Daemon::start(&[]);
    let files = make_files(&server.root().join("tree"), 40);
    let blocked = &files[20].0;
    let back = server.client_dir().join("back/tree");
    fs::create_dir_all(back.join(blocked).join("x")).unwrap();
    let out = server.script(&["-c", "DOWNLOAD -r tree back"], "");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot replace"), "{stderr}");
    let mut landed = 0;
    for (name, content) in &files {
        let path = back.join(name);
        if name != blocked && path.exists() {
            assert_eq!(&fs::read(path).unwrap(), content, "{name}");
            landed += 1;
        }
    }
    assert!(
        stderr.contains(&format!(": {landed} of 40 files downloaded: ")),
        "{landed}: {stderr}"
    );
    assert!(partials(&back).is_empty());
}

/// A server that sends `a` and `b` whole, then half of `c`, and hangs up.
fn cut_at_c() -> Fake {
    Fake::start(|conn| {
        for name in ["a", "b", "c"] {
            let request = conn.recv().unwrap();
            assert_eq!(request.words, ["DOWNLOAD", &format!("/{name}")]);
        }
        for name in ["a", "b"] {
            let content = name.repeat(1000).into_bytes();
            let size = content.len().to_string();
            conn.queue(&Frame::new(Kind::Ok, [size.as_str(), "0", "0"]))
                .unwrap();
            conn.flush().unwrap();
            let mut wire = ferry_tests::data_frames(&content);
            wire.extend(ferry_tests::end_frame(&content));
            conn.stream_mut().write_all(&wire).unwrap();
        }
        conn.send(&Frame::new(Kind::Ok, ["2000", "0", "0"]))
            .unwrap();
        let wire = ferry_tests::data_frames(&b"c".repeat(1000));
        conn.stream_mut().write_all(&wire).unwrap();
    })
}

#[test]
fn a_server_cut_mid_group_leaves_the_files_before_it_landed_and_the_cut_one_kept_apart() {
    // On a disk the files are written under hidden names; in memory, without a name until
    // placed, and the cut one is given its hidden name to be kept.
    let shm = Path::new("/dev/shm");
    assert!(
        ferry_tests::on_tmpfs(shm).unwrap(),
        "/dev/shm is not a tmpfs"
    );
    cut_mid_group(&tempfile::tempdir().unwrap());
    cut_mid_group(&tempfile::tempdir_in(shm).unwrap());
}

fn cut_mid_group(dir: &tempfile::TempDir) {
    let fake = cut_at_c();
    let mut cmd = fake.ferry(dir.path());
    cmd.arg("--json");
    let script = "DOWNLOAD a\nDOWNLOAD b\nDOWNLOAD c\n";
    let out = ferry_tests::run(cmd, script.as_bytes());
    fake.join();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let paths: Vec<_> = lines.iter().map(|l| l["path"].clone()).collect();
    assert_eq!(paths, ["/a".into(), "/b".into(), serde_json::Value::Null]);
    let failure = &lines[2]["error"]["message"];
    assert!(
        failure.as_str().unwrap().starts_with("downloading 'c'"),
        "{stdout}"
    );
    assert!(
        stderr.contains("error: line 3: downloading 'c'"),
        "{stderr}"
    );
    for name in ["a", "b"] {
        assert_eq!(
            fs::read(dir.path().join(name)).unwrap(),
            name.repeat(1000).as_bytes()
        );
    }
    assert!(!dir.path().join("c").exists());
    // The part of `c` is kept apart, and DOWNLOAD -c goes on from it (here from a real
    // server whose `c` begins with it; the part's name depends on the remote path and the
    // destination's name only).
    let kept = partials(dir.path());
    assert_eq!(kept.len(), 1, "{:?}", names_in(dir.path()));
    let server = Daemon::start(&[]);
    fs::write(server.root().join("c"), b"c".repeat(2000)).unwrap();
    let part = dir.path().join(&kept[0]);
    fs::copy(&part, server.client_dir().join(&kept[0])).unwrap();
    let out = server.script(&["-c", "DOWNLOAD -c c"], "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("resuming at 1000 B"), "{stdout}");
    let whole = fs::read(server.client_dir().join("c")).unwrap();
    assert_eq!(whole, b"c".repeat(2000));
}
