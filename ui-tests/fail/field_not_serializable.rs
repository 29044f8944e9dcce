use tessera::SessionData;

struct Opaque;

#[derive(SessionData, Default)]
struct Visit {
    views: u64,
    handle: Option<Opaque>,
}

fn main() {}
