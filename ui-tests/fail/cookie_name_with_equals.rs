use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(name = "s=id")]
struct Visit {
    views: u64,
}

fn main() {}
