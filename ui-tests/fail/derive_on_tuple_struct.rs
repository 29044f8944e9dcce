use tessera::SessionData;

#[derive(SessionData, Default)]
struct Visit(u64);

fn main() {}
