//! The C sources of the limit attempts of `escape_limits.rs` (prelude and conventions in
//! `harness.rs`).

/// A process that leaves the process group and keeps writing a heartbeat, and a parent
/// that spins: only killing the whole sandbox stops both.
pub const SPIN: &str = r#"
int main(int argc, char **argv) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.new", argv[1]);
    if (fork() == 0) {
        setsid();
        for (long beat = 1;; beat++) {
            int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dprintf(fd, "%ld\n", beat);
            close(fd);
            rename(tmp, argv[1]);
            usleep(20000);
        }
    }
    while (access(argv[1], F_OK) != 0) usleep(1000);
    for (volatile unsigned long i = 0;; i++) {}
}
"#;

/// Write argv[2] bytes to argv[1] in 64 KiB chunks, then argv[3] small files.
pub const FILL: &str = r#"
int main(int argc, char **argv) {
    static char buf[65536];
    long total = atol(argv[2]);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (long done = 0; done < total; done += sizeof buf)
        if (write(fd, buf, sizeof buf) < 0) { say("write", -1); break; }
    close(fd);
    for (int i = 0; i < atoi(argv[3]); i++) {
        char name[64];
        snprintf(name, sizeof name, "small-%d", i);
        fd = open(name, O_WRONLY | O_CREAT, 0644);
        write(fd, buf, 60000);
        close(fd);
    }
    return 0;
}
"#;

/// A daemon (it leaves the process group) that writes argv[1]-byte files `many-0`,
/// `many-1`, ... forever, each far under the per-file limit, sleeping argv[2] µs between
/// files (so a broken watch fills the disk slowly, not at disk speed); the parent waits
/// forever. Only the total-size watch can stop it before the time limit.
pub const FILL_FOREVER: &str = r#"
int main(int argc, char **argv) {
    static char buf[65536];
    long each = atol(argv[1]);
    int pause_us = atoi(argv[2]);
    if (each > (long)sizeof buf) each = sizeof buf;
    if (fork() == 0) {
        setsid();
        for (long i = 0;; i++) {
            char name[64];
            snprintf(name, sizeof name, "many-%ld", i);
            int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) { say("open", -1); return 1; }
            if (write(fd, buf, each) < 0) { say("write", -1); return 1; }
            close(fd);
            usleep(pause_us);
        }
    }
    for (;;) pause();
}
"#;
