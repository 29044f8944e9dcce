//! Generated JSON texts, for tests that compare two writers of the same patch.

use tessera::FieldChange;

/// A small deterministic generator of JSON texts.
pub struct Gen(u64);

impl Gen {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Some JSON whitespace, often none.
    pub fn ws(&mut self) -> &'static str {
        ["", "", "", " ", "\n  ", "\t"][self.below(6)]
    }

    /// A JSON string with escapes, unicode and JSON punctuation in it.
    pub fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a", "Zoë", "日本", "\\\"", "\\\\", "\\/", "\\u00e9", "\\n", "}", "{", "]", "[", ",",
            ":", " ", "x y", "🦀",
        ];
        let mut s = String::from("\"");
        for _ in 0..self.below(6) {
            s.push_str(PIECES[self.below(PIECES.len())]);
        }
        s.push('"');
        s
    }

    /// A JSON value, nested up to a few levels.
    pub fn value(&mut self, depth: usize) -> String {
        match self.below(if depth > 2 { 6 } else { 8 }) {
            0 => self.below(100_000).to_string(),
            1 => {
                ["1.50", "-0.0", "1e21", "2.5E-3", "12345678901234567890"][self.below(5)].to_owned()
            }
            2 => self.string(),
            3 => ["true", "false", "null"][self.below(3)].to_owned(),
            4 => "[]".to_owned(),
            5 => "{}".to_owned(),
            6 => {
                let items: Vec<String> =
                    (0..self.below(4)).map(|_| self.value(depth + 1)).collect();
                let sep = format!(",{}", self.ws());
                format!("[{}{}]", self.ws(), items.join(&sep))
            }
            _ => {
                let items: Vec<String> = (0..self.below(4))
                    .map(|_| {
                        let k = self.string();
                        let ws = self.ws();
                        format!("{k}{ws}:{}", self.value(depth + 1))
                    })
                    .collect();
                format!("{{{}}}", items.join(","))
            }
        }
    }

    /// A key from a small set (so that keys repeat).
    pub fn key(&mut self) -> String {
        [
            "views", "user", "cart", "k1", "k2", "Zoë", "a b", "日本", "cookie2", "x",
        ][self.below(10)]
        .to_owned()
    }

    /// A stored express-session text (the cookie among the entries, keys maybe
    /// repeated, now and then one with escapes) and changes to it.
    pub fn record_and_changes(&mut self, stored_cookie: &str) -> (String, Vec<FieldChange>) {
        let mut entries = Vec::new();
        let n = self.below(7);
        let cookie_at = self.below(n + 1);
        for i in 0..=n {
            if i == cookie_at {
                entries.push(format!("\"cookie\":{stored_cookie}"));
            }
            if i < n {
                let key = if self.below(40) == 0 {
                    "k\\\"q".to_owned()
                } else {
                    self.key()
                };
                let (a, b) = (self.ws(), self.ws());
                entries.push(format!("\"{key}\"{a}:{b}{}", self.value(0)));
            }
        }
        let sep = format!(",{}", self.ws());
        let text = format!(
            "{}{{{}{}}}{}",
            self.ws(),
            self.ws(),
            entries.join(&sep),
            self.ws()
        );
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
            panic!("the generator wrote bad JSON ({e}): {text}");
        }
        let changes = (0..self.below(5))
            .map(|_| {
                let key = if self.below(15) == 0 {
                    "cookie".to_owned()
                } else {
                    self.key()
                };
                if self.below(3) == 0 {
                    FieldChange::remove(key)
                } else {
                    match serde_json::from_str(&self.value(0)) {
                        Ok(value) => FieldChange::set(key, value),
                        Err(e) => panic!("the generator wrote bad JSON: {e}"),
                    }
                }
            })
            .collect();
        (text, changes)
    }
}
