//! Reads real `torch.save` files (made by `scripts/make_torch_fixtures.py`)
//! with our pickle reader and compares them to `expected.safetensors`.
use encoder_bench::weights::pickle::{read_torch_state_dict, read_torch_state_dict_bytes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

const GOOD: &[&str] = &[
    "ordered_dict.pt",
    "plain_dict.pt",
    "nested.pt",
    "legacy.pt",
    "fp16.pt",
    "bf16.pt",
    "tied.pt",
    "legacy_tied.pt",
    "noncontig.pt",
    "dtypes.pt",
    "legacy_dtypes.pt",
    "deflated.pt",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch").join(name)
}

struct Expected {
    tensors: HashMap<String, Tensor>,
    /// File name → its tensor keys in file order.
    order: HashMap<String, Vec<String>>,
}

fn expected() -> Expected {
    let path = fixture("expected.safetensors");
    let tensors = Tensor::read_safetensors(&path).unwrap().into_iter().collect();
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let order = meta
        .metadata()
        .as_ref()
        .expect("expected.safetensors has metadata")
        .iter()
        .map(|(file, keys)| (file.clone(), serde_json::from_str(keys).unwrap()))
        .collect();
    Expected { tensors, order }
}

fn assert_same(file: &str, key: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.size(), want.size(), "{file}: `{key}` shape");
    assert_eq!(got.kind(), want.kind(), "{file}: `{key}` dtype");
    assert!(got.is_contiguous(), "{file}: `{key}` is not contiguous");
    assert_eq!(got.device(), tch::Device::Cpu);
    // Compare bit patterns, so that NaNs or -0.0 could not hide a difference.
    let bits = |t: &Tensor| -> Vec<u8> {
        let mut out = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut out, t.numel());
        out
    };
    assert_eq!(bits(got), bits(want), "{file}: `{key}` values");
}

#[test]
fn good_fixtures_match_expected() {
    let exp = expected();
    let mut seen = 0;
    for file in GOOD {
        let got = read_torch_state_dict(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        let order = &exp.order[*file];
        assert_eq!(names, *order, "{file}: keys in file order");
        for (key, t) in &got {
            let want = &exp.tensors[&format!("{file}/{key}")];
            assert_same(file, key, t, want);
            seen += 1;
        }
    }
    assert_eq!(seen, exp.tensors.len(), "every expected tensor was checked");
}

#[test]
fn bytes_and_path_readers_agree() {
    for file in GOOD {
        let path = fixture(file);
        let from_path = read_torch_state_dict(&path).unwrap();
        let from_bytes = read_torch_state_dict_bytes(&path, &std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(from_path.len(), from_bytes.len());
        for ((n1, t1), (n2, t2)) in from_path.iter().zip(&from_bytes) {
            assert_eq!(n1, n2);
            assert_same(file, n1, t1, t2);
        }
    }
}

#[test]
fn dtypes_are_kept() {
    let got: HashMap<String, Tensor> = read_torch_state_dict(&fixture("dtypes.pt")).unwrap().into_iter().collect();
    let kinds = [
        ("f64", Kind::Double),
        ("position_ids", Kind::Int64),
        ("i32", Kind::Int),
        ("i16", Kind::Int16),
        ("i8", Kind::Int8),
        ("u8", Kind::Uint8),
        ("mask", Kind::Bool),
        ("scalar", Kind::Float),
    ];
    for (name, kind) in kinds {
        assert_eq!(got[name].kind(), kind, "{name}");
    }
    assert_eq!(got["position_ids"].size(), [1, 12]);
    assert_eq!(got["scalar"].size(), Vec::<i64>::new());
    assert_eq!(got["empty"].size(), [0, 3]);
    let half = read_torch_state_dict(&fixture("fp16.pt")).unwrap();
    assert!(half.iter().any(|(_, t)| t.kind() == Kind::Half));
    let bf = read_torch_state_dict(&fixture("bf16.pt")).unwrap();
    assert!(bf.iter().any(|(_, t)| t.kind() == Kind::BFloat16));
}

#[test]
fn tied_weights_share_values() {
    for file in ["tied.pt", "legacy_tied.pt"] {
        let got: HashMap<String, Tensor> = read_torch_state_dict(&fixture(file)).unwrap().into_iter().collect();
        let emb = &got["encoder.word_embeddings.weight"];
        assert!(emb.equal(&got["lm_head.weight"]), "{file}");
        assert!(emb.flatten(0, -1).narrow(0, 5, 12).equal(&got["window"]), "{file}");
        assert!(emb.get(2).equal(&got["row2"]), "{file}");
    }
}

fn error_of(file: &str) -> String {
    let path = fixture(file);
    let from_path = read_torch_state_dict(&path).expect_err(file).to_string();
    let from_bytes = read_torch_state_dict_bytes(&path, &std::fs::read(&path).unwrap()).expect_err(file).to_string();
    assert_eq!(from_path, from_bytes, "{file}: both readers give the same message");
    assert!(from_path.contains(file), "{file}: message names the file: {from_path}");
    from_path
}

#[test]
fn bad_fixtures_explain_themselves() {
    let e = error_of("truncated.pt");
    assert!(e.contains("zip") && e.contains("truncated"), "{e}");
    let e = error_of("not_torch.pt");
    assert!(e.contains("not a PyTorch file: expected a zip archive or legacy magic number"), "{e}");
    for file in ["evil.pkl", "evil_zip.pt"] {
        let e = error_of(file);
        assert!(e.contains("refused global `os.system`: only torch state-dict types are allowed"), "{e}");
    }
    let e = error_of("big_endian.pt");
    assert!(e.contains("big-endian"), "{e}");
}

#[test]
fn enormous_storage_length_fails_fast() {
    let start = std::time::Instant::now();
    let e = error_of("huge_storage_legacy.pt");
    assert!(e.contains("truncated: storage `") && e.contains("needs more than 2^64 bytes"), "{e}");
    assert!(e.contains("4611686018427387904 elements"), "{e}");
    assert!(start.elapsed().as_secs() < 5);
}

#[test]
fn missing_file_is_an_io_error() {
    let e = read_torch_state_dict(&fixture("no_such_file.pt")).unwrap_err();
    assert!(matches!(e, encoder_bench::Error::Io { .. }), "{e}");
}

/// Rewrites a torch zip with `data.pkl` mutated by `mutate`, so that the
/// CRC still matches and the mutation reaches the pickle machine.
fn repack_with_pickle(original: &[u8], mut mutate: impl FnMut(&mut Vec<u8>)) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(original)).unwrap();
    let mut dst = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut entry = src.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        if name.ends_with("/data.pkl") {
            mutate(&mut content);
        }
        dst.start_file(name, options).unwrap();
        dst.write_all(&content).unwrap();
    }
    dst.finish().unwrap().into_inner()
}

/// Mutated and truncated copies of good files must give errors (or
/// tensors), never a panic. `TORCH_BIN_FUZZ_CASES=20000` runs a longer
/// search (cases per file; default 100).
#[test]
fn hostile_mutations_never_panic() {
    let cases: usize = std::env::var("TORCH_BIN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let mut rng = StdRng::seed_from_u64(0x70_72_63_68);
    let mut outcomes = [0usize; 2];
    for file in ["ordered_dict.pt", "legacy_tied.pt", "deflated.pt", "legacy_dtypes.pt", "tied.pt"] {
        let original = std::fs::read(fixture(file)).unwrap();
        for case in 0..cases {
            let mut bytes = original.clone();
            if file == "tied.pt" {
                // Only the pickle changes; the zip stays valid.
                let (at, len, value): (f64, usize, u8) = (rng.random(), rng.random_range(1..4), rng.random());
                let truncate = case % 5 == 0;
                bytes = repack_with_pickle(&original, |pkl| {
                    let i = ((pkl.len() as f64 * at) as usize).min(pkl.len() - 1);
                    if truncate {
                        pkl.truncate(i);
                    } else {
                        let end = (i + len).min(pkl.len());
                        for b in &mut pkl[i..end] {
                            *b = b.wrapping_add(value);
                        }
                    }
                });
            } else {
                match case % 4 {
                    0 => bytes.truncate(rng.random_range(0..original.len())),
                    1 => {
                        for _ in 0..rng.random_range(1..8) {
                            let i = rng.random_range(0..bytes.len());
                            bytes[i] = rng.random();
                        }
                    }
                    2 => {
                        // Mutations aimed at the pickle/header, where structure lives.
                        let end = bytes.len().min(600);
                        let i = rng.random_range(0..end);
                        bytes[i] = [0x00, 0x7f, 0x80, 0xff, b'(', b'.', b'R', b'Q'][rng.random_range(0..8)];
                    }
                    _ => {
                        let i = rng.random_range(0..bytes.len());
                        let n = rng.random_range(1..64).min(bytes.len() - i);
                        bytes.drain(i..i + n);
                    }
                }
            }
            let name = format!("{file}#{case}");
            let result = std::panic::catch_unwind(|| read_torch_state_dict_bytes(Path::new(&name), &bytes));
            match result {
                Ok(r) => {
                    if let (Err(e), Some(_)) = (&r, std::env::var_os("TORCH_BIN_FUZZ_VERBOSE")) {
                        eprintln!("{e}");
                    }
                    outcomes[usize::from(r.is_err())] += 1
                }
                Err(_) => panic!("{name} panicked"),
            }
        }
    }
    if std::env::var_os("TORCH_BIN_FUZZ_VERBOSE").is_some() {
        eprintln!("ok/err: {outcomes:?}");
    }
    assert!(outcomes[1] > 0, "mutations should produce errors: {outcomes:?}");
}
