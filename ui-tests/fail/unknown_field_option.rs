use tessera::SessionData;

#[derive(SessionData, Default)]
struct Visit {
    #[session(renam = "v")]
    views: u64,
}

fn main() {}
