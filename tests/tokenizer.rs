//! Token ids equal `transformers.BertTokenizerFast` on models/minilm (fixture
//! from scripts/make_parity_fixtures.py), through tokenizer.json and vocab.txt.
use encoder_bench::data::{Dataset, LabelMap, Padding};
use encoder_bench::tokenizer::TextTokenizer;
use std::path::PathBuf;

fn minilm() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/minilm");
    assert!(p.join("vocab.txt").exists(), "models/minilm is missing: run `make setup`");
    p
}

fn cases() -> Vec<(String, usize, Vec<i64>)> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer_ids.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let ids = c["ids"].as_array().unwrap().iter().map(|i| i.as_i64().unwrap()).collect();
            (c["text"].as_str().unwrap().to_string(), c["max_len"].as_u64().unwrap() as usize, ids)
        })
        .collect()
}

#[test]
fn ids_match_bert_tokenizer_fast() {
    let cases = cases();
    assert!(cases.len() >= 8);
    for tok in [
        TextTokenizer::from_file(minilm().join("tokenizer.json")).unwrap(),
        TextTokenizer::from_vocab(minilm().join("vocab.txt"), true).unwrap(),
    ] {
        for (text, max_len, expected) in &cases {
            assert_eq!(&tok.encode(text, *max_len).unwrap(), expected, "{text:?} at max_len {max_len} via {}", tok.source().display());
        }
    }
}

#[test]
fn dataset_encoding_truncates_and_pads_per_batch() {
    let tok = TextTokenizer::from_dir(minilm()).unwrap();
    let ds =
        Dataset::new("mem", vec!["a b c d e f g h i j k l".into(), "hi".into(), "ok then".into()], vec![0, 1, 1], LabelMap::numbered(2))
            .unwrap();
    let enc = tok.encode_dataset(&ds, 8).unwrap();
    assert_eq!(enc.ids.iter().map(Vec::len).collect::<Vec<_>>(), vec![8, 3, 4]);
    assert!(enc.ids.iter().all(|v| v[0] == 101 && *v.last().unwrap() == 102));
    let b = enc.batches(2, Padding::Dynamic, None, tch::Device::Cpu).unwrap().nth(1).unwrap();
    assert_eq!(b.ids.size(), vec![1, 4]);
    let b = enc.batches(2, Padding::MaxLen, None, tch::Device::Cpu).unwrap().next().unwrap();
    assert_eq!(b.ids.size(), vec![2, 8]);
    assert_eq!(Vec::<i64>::try_from(b.targets).unwrap(), vec![0, 1]);
}

#[test]
fn bad_tokenizer_inputs_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let e = TextTokenizer::from_dir(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json or vocab.txt"), "{e}");
    let bad = tmp.path().join("tokenizer.json");
    std::fs::write(&bad, "{not json").unwrap();
    let e = TextTokenizer::from_file(&bad).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    let vocab = tmp.path().join("vocab.txt");
    std::fs::write(&vocab, "a\nb\n").unwrap();
    let e = TextTokenizer::from_vocab(&vocab, true).unwrap_err().to_string();
    assert!(e.contains("[CLS]") || e.contains("[UNK]"), "{e}");
    assert!(TextTokenizer::from_dir(minilm()).unwrap().encode("x", 1).is_err());
}
