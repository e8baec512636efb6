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

/// Whether to start again asking for huge pages: only when the kernel gives them to
/// memory that asks (`madvise`; `always` gives them anyway, `never` never) and no one
/// chose glibc's tunables.
pub fn wanted(tunables: Option<&OsStr>, mode: Option<&str>) -> bool {
    tunables.is_none() && mode == Some("madvise")
}

/// Starts this program again, as this process, with glibc's malloc asking for huge
/// pages, if `wanted` says so. Returns only if it did not: why, if it tried and failed
/// (the gateway then runs on small pages, as before).
pub fn start_again_on_huge_pages() -> Option<io::Error> {
    let mode = std::fs::read_to_string(MODE).ok();
    let tunables = std::env::var_os(TUNABLES);
    if !wanted(tunables.as_deref(), mode.as_deref().and_then(mode_of)) {
        return None;
    }
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new("/proc/self/exe");
    if let Some(name) = args.next() {
        again.arg0(name);
    }
    Some(again.args(args).env(TUNABLES, HUGE_PAGES).exec())
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
        assert!(wanted(None, Some("madvise")));
        assert!(!wanted(None, Some("always")), "huge pages without asking");
        assert!(!wanted(None, Some("never")), "none to ask for");
        assert!(!wanted(None, None), "a kernel without them");
        assert!(
            !wanted(Some(OsStr::new("glibc.malloc.hugetlb=0")), Some("madvise")),
            "a site's own tunables are kept"
        );
        assert!(!wanted(Some(OsStr::new(HUGE_PAGES)), Some("madvise")));
    }
}
