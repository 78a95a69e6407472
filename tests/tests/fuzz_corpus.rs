//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the same harness
//! the fuzz targets use, on stable Rust: a regression found once by a fuzzer stays caught.

use std::fs;
use std::path::{Path, PathBuf};

use scard_tests::harness::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn every_target_has_a_shim_and_seeds() {
    for (name, _) in TARGETS {
        let shim = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = fs::read_to_string(&shim).unwrap_or_else(|e| panic!("{}: {e}", shim.display()));
        assert!(
            text.contains(&format!("harness::{name}(")),
            "{} does not call harness::{name}",
            shim.display()
        );
        let corpus = fuzz_dir().join("corpus").join(name);
        let seeds =
            fs::read_dir(&corpus).unwrap_or_else(|e| panic!("{}: {e}", corpus.display())).count();
        assert!(seeds >= 3, "{} has only {seeds} seed(s)", corpus.display());
    }
    // And no shim without a harness entry.
    for entry in fs::read_dir(fuzz_dir().join("fuzz_targets")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            TARGETS.iter().any(|(name, _)| *name == stem),
            "fuzz target {stem} is not in harness::TARGETS"
        );
    }
}

#[test]
fn replay_corpora() {
    let mut total = 0;
    for (name, run) in TARGETS {
        let corpus = fuzz_dir().join("corpus").join(name);
        let mut files: Vec<_> = fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files.iter().filter(|f| f.is_file()) {
            let data = fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{name}: {} broke an invariant", file.display());
            total += 1;
        }
    }
    println!("replayed {total} corpus files");
    assert!(total > 0);
}
