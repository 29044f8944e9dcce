//! Stored record text → load → patch → re-encode. Differential: the fields the layer
//! reads from the text equal serde_json's parse of it, and a patched record parses and
//! holds the patch, with every other field unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use tessera::{FieldChange, LoadedRecord, Patch};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the patch; the rest is the stored text.
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let Ok(loaded) = LoadedRecord::from_json(text.to_vec()) else {
        return;
    };
    let parsed: Map<String, Value> = match serde_json::from_slice(text) {
        Ok(m) => m,
        Err(_) => {
            // The scanner leaves values to be checked when decoded: a value serde_json
            // refuses must make the full decode fail, never pass as something else.
            assert!(
                loaded.to_record().is_err(),
                "serde_json refuses what loads whole"
            );
            return;
        }
    };
    let mut expected = parsed.clone();
    expected.remove("cookie");
    let record = loaded.to_record().expect("a loaded record converts");
    assert_eq!(
        record.fields, expected,
        "the scanner and serde_json disagree"
    );

    // A patch: set one key (new or existing), remove another.
    let keys: Vec<&String> = expected.keys().collect();
    let set_key = match keys.get(usize::from(pick) % (keys.len() + 1)) {
        Some(k) if pick & 1 == 0 => (*k).clone(),
        _ => format!("new{pick}"),
    };
    let removed = keys
        .get(usize::from(pick / 2) % (keys.len() + 1))
        .map(|k| (*k).clone())
        .filter(|k| *k != set_key);
    let mut changes = vec![FieldChange::set(
        set_key.clone(),
        json!({"n": pick, "s": "é/\""}),
    )];
    if let Some(k) = &removed {
        changes.push(FieldChange::remove(k.clone()));
    }
    let cookie = loaded.cookie().clone();
    let patched = Patch::new(&cookie, &changes)
        .apply_to_json(text)
        .expect("a loaded text patches");
    let out: Map<String, Value> =
        serde_json::from_slice(&patched).expect("a patched record is JSON");
    let mut want = expected;
    want.insert(set_key, json!({"n": pick, "s": "é/\""}));
    if let Some(k) = &removed {
        want.remove(k);
    }
    let mut got = out;
    assert!(
        got.remove("cookie").is_some(),
        "the patched record has its cookie"
    );
    assert_eq!(got, want, "the patch did not land as asked");
    // And what was written loads again.
    LoadedRecord::from_json(patched).expect("a patched record loads");
});
