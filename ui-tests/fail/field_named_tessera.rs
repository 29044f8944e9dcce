use tessera::SessionData;

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
    #[session(rename = "_tessera")]
    meta: String,
}

fn main() {}
