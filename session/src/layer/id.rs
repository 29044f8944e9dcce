//! Session ids: express-session's `uid-safe(24)`, from the OS generator.

use crate::session::SessionError;
use crate::signing::{URL_SAFE_NO_PAD, base64_into};

/// 24 random bytes from the OS CSPRNG, base64url without padding: 32 characters, like
/// express-session's `uid-safe(24)`.
///
/// The bytes are read from the OS in blocks of 4 KiB per thread (one system call per 170
/// ids instead of one per id); a block is never reused after a `fork`, where parent and
/// child would otherwise hand out the same ids.
pub(crate) fn default_id() -> Result<String, SessionError> {
    use std::cell::RefCell;
    const BLOCK: usize = 4080; // a multiple of 24
    struct Pool {
        bytes: [u8; BLOCK],
        used: usize,
        pid: u32,
    }
    thread_local! {
        static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; BLOCK], used: BLOCK, pid: 0 }) };
    }
    let mut id = [0u8; 24];
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let pid = std::process::id();
        if pool.used + 24 > BLOCK || pool.pid != pid {
            getrandom::fill(&mut pool.bytes)?;
            pool.used = 0;
            pool.pid = pid;
        }
        let at = pool.used;
        id.copy_from_slice(&pool.bytes[at..at + 24]);
        // Never hand the same bytes out twice.
        pool.bytes[at..at + 24].fill(0);
        pool.used += 24;
        Ok::<(), getrandom::Error>(())
    })
    .map_err(SessionError::Random)?;
    let mut out = String::with_capacity(32);
    base64_into(&id, &URL_SAFE_NO_PAD, &mut out);
    Ok(out)
}
