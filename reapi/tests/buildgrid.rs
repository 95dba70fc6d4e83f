//! cmod-reapi against a real BuildGrid 0.4.4 (with PostgreSQL 15) on loopback: capabilities,
//! CAS round trips (batched and ByteStream), the action cache, Merkle trees, and remote
//! execution through a test bot speaking the Bots API.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cmod_reapi::proto::build::bazel::remote::execution::v2 as re;
use cmod_reapi::{Blob, Bot, Client, Digest, Endpoint, Error, LeaseWork, MerkleTree};
use prost::Message;
use support::buildgrid::BuildGrid;

#[test]
fn capabilities_say_sha256_and_execution_enabled() {
    let grid = BuildGrid::shared();
    let caps = grid.client().capabilities().unwrap();
    assert!(caps.supports_sha256(), "{caps:?}");
    assert_eq!(caps.digest_functions, ["SHA256"]);
    assert!(caps.exec_enabled, "{caps:?}");
    assert_eq!(caps.exec_digest_function, "SHA256");
    // BuildGrid states 4 MiB less 1 KiB of headroom for the message's framing.
    assert!(
        (1024 * 1024..=4 * 1024 * 1024).contains(&caps.max_batch_total_size),
        "{caps:?}"
    );
    assert!(caps.action_cache_update_enabled);
}

#[test]
fn small_blobs_round_trip_in_batches_and_find_missing_follows() {
    let grid = BuildGrid::shared();
    let client = grid.client();
    let blobs: Vec<Blob> = (0..50)
        .map(|i| Blob::from_bytes(format!("small blob {i} of {}", grid.url()).into_bytes()))
        .collect();
    let digests: Vec<Digest> = blobs.iter().map(|b| b.digest).collect();
    let mut missing = client.find_missing(&digests).unwrap();
    missing.sort();
    let mut expected = digests.clone();
    expected.sort();
    assert_eq!(missing, expected, "a fresh server has none of them");
    let stats = client.upload(&blobs).unwrap();
    assert_eq!((stats.blobs_uploaded, stats.blobs_present), (50, 0));
    assert!(client.find_missing(&digests).unwrap().is_empty());
    // A second upload sends nothing.
    let again = client.upload(&blobs).unwrap();
    assert_eq!((again.blobs_uploaded, again.blobs_present), (0, 50));
    let back = client.download(&digests).unwrap();
    for b in &blobs {
        let cmod_reapi::BlobSource::Bytes(content) = &b.source else {
            unreachable!()
        };
        assert_eq!(&back[&b.digest], content);
    }
    // An unknown blob is reported missing, and reading it fails with NotFound.
    let unknown = Digest::of_bytes(b"never uploaded");
    assert_eq!(client.find_missing(&[unknown]).unwrap(), [unknown]);
    match client.read_blob(&unknown) {
        Err(Error::Server { code, .. }) => assert_eq!(code, tonic::Code::NotFound),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn a_large_blob_round_trips_through_bytestream_and_is_verified() {
    let grid = BuildGrid::shared();
    let client = grid.client();
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("big input.bin");
    // 9 MiB + 7: above the 4 MiB batch limit, several 1 MiB chunks and a short last one.
    let content: Vec<u8> = (0..(9 * 1024 * 1024 + 7) as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&path, &content).unwrap();
    let blob = Blob::from_file(&path).unwrap();
    assert_eq!(client.find_missing(&[blob.digest]).unwrap(), [blob.digest]);
    let stats = client.upload(std::slice::from_ref(&blob)).unwrap();
    assert_eq!(stats.bytes_uploaded, content.len() as u64);
    assert!(client.find_missing(&[blob.digest]).unwrap().is_empty());
    assert!(client.read_blob(&blob.digest).unwrap() == content);
    let out = scratch.path().join("big output.bin");
    client.download_to_file(&blob.digest, &out, true).unwrap();
    assert!(fs::read(&out).unwrap() == content);
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o755
    );

    // Corrupt the server's copy (BuildGrid's disk storage: objects/HH/REST): the download
    // must fail with a digest mismatch and leave no file behind.
    let hash = blob.digest.hash_hex();
    let stored = grid
        .dir()
        .join("cas/cas/objects")
        .join(&hash[..2])
        .join(&hash[2..]);
    let mut bad = content.clone();
    bad[4_000_000] ^= 1;
    fs::write(&stored, &bad).expect("the stored blob is where BuildGrid keeps it");
    let corrupt = scratch.path().join("corrupt.bin");
    match client.download_to_file(&blob.digest, &corrupt, false) {
        Err(Error::DigestMismatch { expected, .. }) => assert_eq!(expected, blob.digest),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!corrupt.exists());
    assert!(matches!(
        client.read_blob(&blob.digest),
        Err(Error::DigestMismatch { .. })
    ));
}

#[test]
fn a_changed_file_is_not_uploaded_under_its_old_digest() {
    let grid = BuildGrid::shared();
    let client = grid.client();
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("changing");
    fs::write(&path, vec![1u8; 5 * 1024 * 1024]).unwrap();
    let blob = Blob::from_file(&path).unwrap();
    fs::write(&path, vec![2u8; 5 * 1024 * 1024]).unwrap();
    let err = client.upload(std::slice::from_ref(&blob)).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_eq!(client.find_missing(&[blob.digest]).unwrap(), [blob.digest]);
}

#[test]
fn action_cache_update_then_get() {
    let grid = BuildGrid::shared();
    let client = grid.client();
    let action = Digest::of_bytes(format!("action for the cache test {}", grid.url()).as_bytes());
    assert!(client.get_action_result(&action).unwrap().is_none());
    let stdout = client.upload_bytes(b"compiled\n".to_vec()).unwrap();
    let output = client.upload_bytes(b"object code".to_vec()).unwrap();
    let result = one_output_result("out/a.o".into(), &output, Some(&stdout));
    client
        .update_action_result(&action, result.clone())
        .unwrap();
    let got = client
        .get_action_result(&action)
        .unwrap()
        .expect("a cached result");
    assert_eq!(got.output_files, result.output_files);
    assert_eq!(got.stdout_digest, result.stdout_digest);
    let dest = tempfile::tempdir().unwrap();
    client.materialise_outputs(&got, dest.path()).unwrap();
    assert_eq!(
        fs::read(dest.path().join("out/a.o")).unwrap(),
        b"object code"
    );
}

/// A directory with nested content, an executable, an empty file and dir, and a space in names.
/// A successful action's result: one output file at `path` and what it printed.
fn one_output_result(path: String, output: &Digest, stdout: Option<&Digest>) -> re::ActionResult {
    re::ActionResult {
        output_files: vec![re::OutputFile {
            path,
            digest: Some(output.to_proto()),
            is_executable: false,
            ..re::OutputFile::default()
        }],
        exit_code: 0,
        stdout_digest: stdout.map(Digest::to_proto),
        ..re::ActionResult::default()
    }
}

fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("src/mod a")).unwrap();
    fs::create_dir_all(root.join("empty dir")).unwrap();
    fs::write(root.join("src/mod a/a.cppm"), b"export module a;\n").unwrap();
    fs::write(root.join("src/main.cpp"), b"import a;\nint main() {}\n").unwrap();
    fs::write(root.join("build.sh"), b"#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(root.join("build.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("src/main.cpp", root.join("main link")).unwrap();
}

/// [`sample_tree`] at `<scratch>/input root`, its Merkle tree uploaded.
fn uploaded_sample_tree(client: &Client, scratch: &Path) -> MerkleTree {
    let input = scratch.join("input root");
    sample_tree(&input);
    let tree = MerkleTree::from_dir(&input).unwrap();
    client.upload(&tree.blobs()).unwrap();
    tree
}

#[test]
fn an_input_root_uploads_reads_back_and_materialises() {
    let grid = BuildGrid::shared();
    let client = grid.client();
    let scratch = tempfile::tempdir().unwrap();
    let tree = uploaded_sample_tree(&client, scratch.path());
    let all: Vec<Digest> = tree.blobs().iter().map(|b| b.digest).collect();
    assert!(client.find_missing(&all).unwrap().is_empty());
    // The root Directory reads back, decodes, and is what was built.
    let root_bytes = client.read_blob(&tree.root_digest()).unwrap();
    let root = re::Directory::decode(root_bytes.as_slice()).unwrap();
    assert_eq!(&root, tree.root_directory());
    let names: Vec<&str> = root.directories.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["empty dir", "src"]);

    // As an output directory: upload its Tree and materialise it elsewhere.
    let tree_digest = client.upload_bytes(tree.to_tree().encode_to_vec()).unwrap();
    let result = re::ActionResult {
        output_directories: vec![re::OutputDirectory {
            path: "out/tree".into(),
            tree_digest: Some(tree_digest.to_proto()),
            ..re::OutputDirectory::default()
        }],
        ..re::ActionResult::default()
    };
    let dest = scratch.path().join("materialised here");
    client.materialise_outputs(&result, &dest).unwrap();
    let copy = dest.join("out/tree");
    assert_eq!(
        MerkleTree::from_dir(&copy).unwrap().root_digest(),
        tree.root_digest()
    );
    assert_eq!(
        fs::read_link(copy.join("main link")).unwrap(),
        Path::new("src/main.cpp")
    );
    assert_ne!(
        fs::metadata(copy.join("build.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0
    );

    // A result naming a path outside the destination is refused.
    let evil = re::ActionResult {
        output_files: vec![re::OutputFile {
            path: "../escape".into(),
            digest: Some(Digest::of_bytes(b"").to_proto()),
            ..re::OutputFile::default()
        }],
        ..re::ActionResult::default()
    };
    let err = client.materialise_outputs(&evil, &dest).unwrap_err();
    assert!(err.to_string().contains("unsafe output path"), "{err}");
    assert!(!scratch.path().join("escape").exists());
}

/// What the test bot "runs": the output it writes for a command.
/// An input root materialised around what is already in place: the entries `have`
/// accepts (a directory by its `Directory` digest, a file by content and executable bit)
/// are neither fetched nor written; everything else is, as `materialise_root` writes it.
#[test]
fn an_input_root_materialises_without_what_is_already_in_place() {
    let grid = BuildGrid::shared();
    let client = grid.client();
    let scratch = tempfile::tempdir().unwrap();
    let tree = uploaded_sample_tree(&client, scratch.path());
    let whole = scratch.path().join("whole");
    client
        .materialise_root(&tree.root_digest(), &whole)
        .unwrap();
    assert_eq!(
        MerkleTree::from_dir(&whole).unwrap().root_digest(),
        tree.root_digest()
    );

    let src = tree
        .root_directory()
        .directories
        .iter()
        .find(|d| d.name == "src")
        .unwrap();
    let src_digest = Digest::from_proto(src.digest.as_ref().unwrap()).unwrap();
    let script = Digest::of_bytes(b"#!/bin/sh\nexit 0\n");
    let asked = std::sync::Mutex::new(Vec::new());
    let have = |rel: &Path, entry: cmod_reapi::Present| {
        asked.lock().unwrap().push(rel.display().to_string());
        match entry {
            cmod_reapi::Present::Directory(d) => rel == Path::new("src") && d == src_digest,
            cmod_reapi::Present::File { digest, executable } => {
                rel == Path::new("build.sh") && digest == script && executable
            }
        }
    };
    let partial = scratch.path().join("partial");
    client
        .materialise_root_except(&tree.root_digest(), &partial, &have)
        .unwrap();
    assert!(
        !partial.join("src").exists(),
        "a directory in place is left out"
    );
    assert!(
        !partial.join("build.sh").exists(),
        "a file in place is left out"
    );
    assert_eq!(fs::read(partial.join("empty")).unwrap(), b"");
    assert!(partial.join("empty dir").is_dir());
    assert_eq!(
        fs::read_link(partial.join("main link")).unwrap(),
        Path::new("src/main.cpp")
    );
    // Nothing below a directory left out is even looked at.
    let asked = asked.into_inner().unwrap();
    assert!(asked.iter().all(|p| !p.starts_with("src/")), "{asked:?}");

    // A file whose executable bit differs from what is in place is written.
    let other = scratch.path().join("other");
    let not_executable = |rel: &Path, entry: cmod_reapi::Present| {
        rel == Path::new("build.sh")
            && entry
                == cmod_reapi::Present::File {
                    digest: script,
                    executable: false,
                }
    };
    client
        .materialise_root_except(&tree.root_digest(), &other, &not_executable)
        .unwrap();
    assert!(other.join("build.sh").exists());
}

fn bot_output(command: &re::Command) -> Vec<u8> {
    format!("ran: {}\n", command.arguments.join(" ")).into_bytes()
}

/// A test bot without platform properties: see [`run_bot`].
fn run_test_bot(url: &str, expected_action: re::Action) -> Result<String, Error> {
    run_bot(url, "cmod-test-bot", &[], expected_action)
}

/// A test bot: creates a session with `properties`, waits for one lease, checks the action and
/// its command, uploads an output and completes the lease. Returns the lease id.
fn run_bot(
    url: &str,
    bot_id: &str,
    properties: &[(&str, &str)],
    expected_action: re::Action,
) -> Result<String, Error> {
    let client = Client::connect(Endpoint::parse(url)?)?;
    let mut bot = Bot::create(&client, bot_id, properties, Duration::from_secs(6))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Some(lease) = bot.poll()?.into_iter().next() else {
            continue;
        };
        let action = match lease.work {
            LeaseWork::Action(a) => a,
            LeaseWork::ActionDigest(d) => re::Action::decode(client.read_blob(&d)?.as_slice())
                .map_err(|e| client_protocol(url, e))?,
        };
        assert_eq!(
            action, expected_action,
            "the lease carries the executed action"
        );
        let command_digest = Digest::from_proto(action.command_digest.as_ref().expect("command"))?;
        let command = re::Command::decode(client.read_blob(&command_digest)?.as_slice())
            .map_err(|e| client_protocol(url, e))?;
        let output = client.upload_bytes(bot_output(&command))?;
        let stdout = client.upload_bytes(b"bot stdout\n".to_vec())?;
        let result = one_output_result(command.output_paths[0].clone(), &output, Some(&stdout));
        bot.complete(&lease.id, &result)?;
        return Ok(lease.id);
    }
    panic!("the bot got no lease within 120 s");
}

fn client_protocol(url: &str, e: prost::DecodeError) -> Error {
    Error::Protocol {
        url: url.to_string(),
        detail: e.to_string(),
    }
}

#[test]
fn execution_through_a_bots_api_worker_end_to_end() {
    let grid = BuildGrid::shared();
    let client = grid.client();
    let scratch = tempfile::tempdir().unwrap();
    let (action, action_digest, command) =
        upload_sample_action(&client, &scratch.path().join("input"), "end to end");
    let url = grid.url().to_string();
    let expected = action.clone();
    let bot = std::thread::spawn(move || run_test_bot(&url, expected));
    let response = client.execute(&action_digest, true).unwrap();
    let lease_id = bot
        .join()
        .expect("the bot thread")
        .expect("the bot's calls");
    assert!(!lease_id.is_empty());

    let status = response.status.clone().unwrap_or_default();
    assert_eq!(status.code, 0, "{status:?}");
    assert!(!response.cached_result);
    let result = response.result.expect("an ActionResult");
    assert_eq!(result.exit_code, 0);
    assert_eq!(result.output_files.len(), 1);
    assert_eq!(result.output_files[0].path, "out/main.o");
    let dest = scratch.path().join("outputs");
    client.materialise_outputs(&result, &dest).unwrap();
    assert_eq!(
        fs::read(dest.join("out/main.o")).unwrap(),
        bot_output(&command)
    );
    let stdout = Digest::from_proto(result.stdout_digest.as_ref().unwrap()).unwrap();
    assert_eq!(client.read_blob(&stdout).unwrap(), b"bot stdout\n");

    // The server cached it: executing again (cache lookup allowed) answers from the cache.
    let again = client.execute(&action_digest, false).unwrap();
    assert!(again.cached_result, "{again:?}");
    assert_eq!(again.result.unwrap().output_files, result.output_files);
}

/// Uploads the sample input root, a Command and its Action; returns the Action, its digest and
/// the Command.
fn upload_sample_action(
    client: &Client,
    input: &Path,
    tag: &str,
) -> (re::Action, Digest, re::Command) {
    sample_tree(input);
    let tree = MerkleTree::from_dir(input).unwrap();
    client.upload(&tree.blobs()).unwrap();
    let command = re::Command {
        arguments: vec![
            "clang++".into(),
            "-c".into(),
            "src/main.cpp".into(),
            tag.into(),
        ],
        output_paths: vec!["out/main.o".into()],
        ..re::Command::default()
    };
    let command_digest = client.upload_bytes(command.encode_to_vec()).unwrap();
    let action = re::Action {
        command_digest: Some(command_digest.to_proto()),
        input_root_digest: Some(tree.root_digest().to_proto()),
        ..re::Action::default()
    };
    let action_digest = client.upload_bytes(action.encode_to_vec()).unwrap();
    (action, action_digest, command)
}

#[test]
fn execute_resumes_with_wait_execution_when_the_server_restarts() {
    // A server of its own: this test crashes it.
    let mut grid = BuildGrid::start();
    let client = grid.client();
    let scratch = tempfile::tempdir().unwrap();
    let (action, action_digest, command) =
        upload_sample_action(&client, &scratch.path().join("input"), "restart");
    let url = grid.url().to_string();
    let execution = std::thread::spawn(move || {
        let client = Client::connect(Endpoint::parse(&url)?)?;
        client.execute(&action_digest, true)
    });
    // Queued, with no bot to run it; then the server dies under the open operation stream.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !execution.is_finished(),
        "execute() returned with no bot running"
    );
    grid.crash_and_restart_server();
    let url = grid.url().to_string();
    let bot = std::thread::spawn(move || run_test_bot(&url, action));
    bot.join()
        .expect("the bot thread")
        .expect("the bot's calls");
    let response = execution.join().expect("the execute thread").unwrap();
    let result = response.result.expect("an ActionResult");
    let dest = scratch.path().join("outputs");
    client.materialise_outputs(&result, &dest).unwrap();
    assert_eq!(
        fs::read(dest.join("out/main.o")).unwrap(),
        bot_output(&command)
    );
}

/// Runs `execute` for `action_digest` on its own connection and thread.
fn execute_in_thread(
    url: &str,
    action_digest: Digest,
) -> std::thread::JoinHandle<Result<re::ExecuteResponse, Error>> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let client = Client::connect(Endpoint::parse(&url)?)?;
        client.execute(&action_digest, true)
    })
}

#[test]
fn leases_go_only_to_a_bot_whose_platform_matches() {
    // A server of its own: its bots would take other tests' actions, which have no platform.
    let grid = BuildGrid::start();
    let client = grid.client();
    let scratch = tempfile::tempdir().unwrap();
    let (mut action, _, command) =
        upload_sample_action(&client, &scratch.path().join("input"), "platform");
    // OSFamily and ISA are the keys BuildGrid always matches on; properties sorted by name.
    let property = |name: &str, value: &str| re::platform::Property {
        name: name.into(),
        value: value.into(),
    };
    action.platform = Some(re::Platform {
        properties: vec![property("ISA", "x86-64"), property("OSFamily", "linux")],
    });
    let action_digest = client.upload_bytes(action.encode_to_vec()).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let (url, stop) = (grid.url().to_string(), done.clone());
    let wrong_bot = std::thread::spawn(move || -> Result<usize, Error> {
        let client = Client::connect(Endpoint::parse(&url)?)?;
        let props = [("OSFamily", "linux"), ("ISA", "aarch64")];
        let mut bot = Bot::create(
            &client,
            "cmod-test-bot-aarch64",
            &props,
            Duration::from_secs(5),
        )?;
        let mut leases = 0;
        while !stop.load(Ordering::SeqCst) {
            leases += bot.poll()?.len();
        }
        Ok(leases)
    });
    let (url, expected) = (grid.url().to_string(), action.clone());
    let right_bot = std::thread::spawn(move || {
        let props = [("OSFamily", "linux"), ("ISA", "x86-64")];
        run_bot(&url, "cmod-test-bot-x86-64", &props, expected)
    });
    let execution = execute_in_thread(grid.url(), action_digest);
    // The bots first: if the right one gets nothing, execute() would wait for ever.
    let right = right_bot.join();
    done.store(true, Ordering::SeqCst);
    let wrong_leases = wrong_bot
        .join()
        .expect("the aarch64 bot")
        .expect("its calls");
    assert_eq!(
        wrong_leases, 0,
        "the aarch64 bot was handed an x86-64 action"
    );
    right.expect("the x86-64 bot").expect("its calls");
    let response = execution.join().expect("the execute thread").unwrap();
    let result = response.result.expect("an ActionResult");
    let dest = scratch.path().join("outputs");
    client.materialise_outputs(&result, &dest).unwrap();
    assert_eq!(
        fs::read(dest.join("out/main.o")).unwrap(),
        bot_output(&command)
    );
}

/// The lease a bot polls for next (within 60 s), with the Action it carries.
fn next_lease(bot: &mut Bot) -> Result<(String, re::Action), Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(lease) = bot.poll()?.into_iter().next() {
            let LeaseWork::Action(action) = lease.work else {
                panic!("BuildGrid sends the Action itself");
            };
            return Ok((lease.id, action));
        }
    }
    panic!("no lease within 60 s");
}

#[test]
fn failed_leases_are_retried_or_end_the_execution_with_their_status() {
    // A server of its own: its bot must see only this test's actions.
    let grid = BuildGrid::start();
    let client = grid.client();
    let scratch = tempfile::tempdir().unwrap();
    let (retried, retried_digest, command) =
        upload_sample_action(&client, &scratch.path().join("a"), "retried");
    let (refused, refused_digest, _) =
        upload_sample_action(&client, &scratch.path().join("b"), "refused");
    let url = grid.url().to_string();
    let bot = std::thread::spawn(move || -> Result<(), Error> {
        let client = Client::connect(Endpoint::parse(&url)?)?;
        let mut bot = Bot::create(&client, "cmod-test-bot-faults", &[], Duration::from_secs(5))?;
        let mut retried_id: Option<String> = None;
        for _ in 0..3 {
            let (id, action) = next_lease(&mut bot)?;
            if action == refused {
                // An action this worker cannot run: FAILED_PRECONDITION ends the execution.
                bot.fail(
                    &id,
                    tonic::Code::FailedPrecondition,
                    "no clang++-19 on this worker",
                )?;
            } else if retried_id.is_none() {
                // A worker that lost its sandbox: UNAVAILABLE, so the job is handed out again.
                assert_eq!(action, retried);
                bot.fail(&id, tonic::Code::Unavailable, "sandbox lost")?;
                retried_id = Some(id);
            } else {
                assert_eq!(action, retried);
                assert_eq!(Some(&id), retried_id.as_ref(), "the same job, retried");
                let output = client.upload_bytes(bot_output(&command))?;
                let result = one_output_result("out/main.o".into(), &output, None);
                bot.complete(&id, &result)?;
            }
        }
        Ok(())
    });
    let first = execute_in_thread(grid.url(), retried_digest);
    let second = execute_in_thread(grid.url(), refused_digest);
    // The bot first: if it fails, the executions would wait for ever.
    bot.join()
        .expect("the bot thread")
        .expect("the bot's calls");
    let first_response = first.join().expect("the execute thread").unwrap();
    let second_response = second.join().expect("the execute thread").unwrap();

    let status = first_response.status.clone().unwrap_or_default();
    assert_eq!(status.code, 0, "{status:?}");
    let result = first_response.result.expect("an ActionResult");
    assert_eq!(result.output_files[0].path, "out/main.o");
    let status = second_response.status.unwrap_or_default();
    assert_eq!(
        tonic::Code::from(status.code),
        tonic::Code::FailedPrecondition
    );
    assert!(status.message.contains("no clang++-19"), "{status:?}");
}

#[test]
fn an_unreachable_server_gives_a_clear_error_naming_its_url() {
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("grpc://127.0.0.1:{port}");
    let err = Client::connect(Endpoint::parse(&url).unwrap())
        .err()
        .expect("no server there");
    let msg = err.to_string();
    assert!(matches!(err, Error::Unreachable { .. }), "{msg}");
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("onnection refused"), "{msg}");
}
