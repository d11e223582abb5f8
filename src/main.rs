//! The `handoff` binary: everything lives in the library; see `handoff::cli`.

/// mimalloc instead of the system allocator: replay allocates and frees many small
/// JSON values per event, and glibc's malloc spent a fifth of the time there and in
/// page faults from trimming and regrowing its heap (see the README's benchmark notes).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    handoff::cli::main()
}
