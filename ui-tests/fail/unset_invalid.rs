use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(unset = "drop")]
struct Visit {
    views: u64,
}

fn main() {}
