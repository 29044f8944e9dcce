use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(name = "sid;")]
struct Visit {
    views: u64,
}

fn main() {}
