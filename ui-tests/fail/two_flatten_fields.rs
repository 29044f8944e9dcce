use tessera::SessionData;

#[derive(SessionData, Default)]
struct Visit {
    #[session(flatten)]
    a: serde_json::Map<String, serde_json::Value>,
    #[session(flatten)]
    b: serde_json::Map<String, serde_json::Value>,
}

fn main() {}
