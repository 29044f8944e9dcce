use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(genid = "uuid")]
struct Visit {
    views: u64,
}

fn main() {}
