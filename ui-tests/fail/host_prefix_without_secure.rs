use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(name = "__Host-sid")]
struct Visit {
    views: u64,
}

fn main() {}
