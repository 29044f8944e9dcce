use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(resave = "no")]
struct Visit {
    views: u64,
}

fn main() {}
