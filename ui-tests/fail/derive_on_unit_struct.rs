use tessera::SessionData;

#[derive(SessionData, Default)]
struct Visit;

fn main() {}
