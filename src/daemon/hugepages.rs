//! Huge pages for the gateway's memory.
//!
//! A gateway meets its trap after minutes or hours of nothing, with the pages of what a
//! fan-out reads and writes (each recorder's standing, its order, its record) out of the
//! processor's address caches: with 4 KiB pages, deciding 5,000 shutdowns walks the page
//! tables for each of a few dozen arrays. On 2 MiB pages it does not. Measured here
//! (`cargo bench --bench station`, the fan-out after 300 ms asleep): 2.51, 3.83 and 2.57
//! ms on small pages against 1.23, 1.88 and 1.86 ms with glibc's malloc asking for huge
//! ones, alternating; `fanout`, journal on, 12.98 ms against 10.64 ms.
//!
//! Most kernels give transparent huge pages only to memory that asks for them
//! (`/sys/kernel/mm/transparent_hugepage/enabled` is `madvise`), and glibc's malloc asks
//! only when its tunable `glibc.malloc.hugetlb=1` is set, which glibc reads from
//! `GLIBC_TUNABLES` when a program starts. So `trapgate run` starts again at once, as
//! the same process (`execve` of itself, the same pid, arguments and descriptors), with
//! that tunable, when the kernel is in `madvise` mode and `GLIBC_TUNABLES` is not set.
//! A site that chose its own tunables keeps them: `GLIBC_TUNABLES=glibc.malloc.hugetlb=0`
//! (or any other value) is left as it is, and nothing starts again.

use std::ffi::OsStr;
use std::io;

/// The environment variable glibc reads its tunables from, at a program's start.
pub const TUNABLES: &str = "GLIBC_TUNABLES";

/// The tunable that makes glibc's malloc ask for transparent huge pages (glibc 2.35
/// and later; an older glibc ignores it).
pub const HUGE_PAGES: &str = "glibc.malloc.hugetlb=1";

/// Where the kernel says when it gives transparent huge pages.
const MODE: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// The kernel's mode for transparent huge pages, from the text of its `enabled` file
/// (`always [madvise] never`): the word in brackets.
pub fn mode_of(text: &str) -> Option<&str> {
    let start = text.find('[')? + 1;
    let len = text[start..].find(']')?;
    Some(&text[start..start + len])
}

/// Set in the environment of the program started again, beside the tunable: a program
/// started with privileges (a binary given file capabilities, `setcap
/// cap_net_bind_service=+ep`, or set-user-ID) may have its tunables erased by glibc
/// before it reads its environment, and would otherwise start again for ever.
pub const STARTED_AGAIN: &str = "TRAPGATE_STARTED_AGAIN";

/// `STARTED_AGAIN`'s value.
const MARK: &str = "huge-pages";

/// The variables of this process's environment that its start on huge pages set (none
/// if it was not started again): the commands it runs do not inherit them, so that a
/// shutdown script's programs run as the site's administrator set them up, on glibc's
/// defaults.
pub fn set_by_the_start_again() -> impl Iterator<Item = &'static str> {
    let again = std::env::var_os(STARTED_AGAIN).is_some_and(|v| v == MARK);
    let tunables = again && std::env::var_os(TUNABLES).is_some_and(|v| v == HUGE_PAGES);
    [(STARTED_AGAIN, again), (TUNABLES, tunables)]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
}

/// Whether to start again asking for huge pages: only when the kernel gives them to
/// memory that asks (`madvise`; `always` gives them anyway, `never` never), no one
/// chose glibc's tunables, and this is not already the program started again.
pub fn wanted(tunables: Option<&OsStr>, mode: Option<&str>, again: bool) -> bool {
    tunables.is_none() && mode == Some("madvise") && !again
}

/// Starts this program again, as this process, with glibc's malloc asking for huge
/// pages, if `wanted` says so. Returns only if it did not: why, if it tried and failed
/// (the gateway then runs on small pages, as before).
pub fn start_again_on_huge_pages() -> Option<io::Error> {
    let mode = std::fs::read_to_string(MODE).ok();
    let tunables = std::env::var_os(TUNABLES);
    let mode = mode.as_deref().and_then(mode_of);
    let again = std::env::var_os(STARTED_AGAIN).is_some();
    if again {
        keep_name();
    }
    if !wanted(tunables.as_deref(), mode, again) {
        return None;
    }
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new("/proc/self/exe");
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    Some(
        command
            .args(args)
            .env(TUNABLES, HUGE_PAGES)
            .env(STARTED_AGAIN, MARK)
            .exec(),
    )
}

/// The program started again takes back its name. The kernel names a process after the
/// file it runs, so `execve` of `/proc/self/exe` names it `exe`: what `ps`, `top`,
/// `pgrep trapgate` and the system journal's `_COMM` would show. Its first start was
/// named after its command's file name, `argv[0]`'s: that name again (the kernel keeps
/// its first 15 bytes).
#[allow(unsafe_code)]
fn keep_name() {
    use std::os::unix::ffi::OsStrExt;
    let Some(arg0) = std::env::args_os().next() else {
        return;
    };
    let Some(name) = std::path::Path::new(&arg0).file_name() else {
        return;
    };
    let Ok(name) = std::ffi::CString::new(name.as_bytes()) else {
        return;
    };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string (at most its first 16 bytes)
    // from a pointer valid for the call, and names only the calling thread: here, the
    // process's only one so far.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_the_word_in_brackets() {
        assert_eq!(mode_of("always [madvise] never\n"), Some("madvise"));
        assert_eq!(mode_of("[always] madvise never\n"), Some("always"));
        assert_eq!(mode_of("always madvise [never]"), Some("never"));
        assert_eq!(mode_of("always madvise never"), None);
        assert_eq!(mode_of("always [madvise"), None);
    }

    #[test]
    fn only_a_kernel_that_waits_to_be_asked_and_no_chosen_tunables_start_again() {
        assert!(wanted(None, Some("madvise"), false));
        assert!(
            !wanted(None, Some("always"), false),
            "huge pages without asking"
        );
        assert!(!wanted(None, Some("never"), false), "none to ask for");
        assert!(!wanted(None, None, false), "a kernel without them");
        assert!(
            !wanted(
                Some(OsStr::new("glibc.malloc.hugetlb=0")),
                Some("madvise"),
                false
            ),
            "a site's own tunables are kept"
        );
        assert!(
            !wanted(Some(OsStr::new(HUGE_PAGES)), Some("madvise"), false),
            "started again already"
        );
        assert!(
            !wanted(None, Some("madvise"), true),
            "started again already, its tunables erased (a privileged start): not again"
        );
    }
}
