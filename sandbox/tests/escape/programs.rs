//! The C sources of the escape attempts of `escape.rs`. Each prints `label: ok` or
//! `label: <ERRNO>` per operation (see `say` in the prelude, `harness.rs`); the harness
//! compiles them with clang-19 and runs them as builders.

/// Open each argument read-only and read from it.
pub const READ_PATHS: &str = r#"
int main(int argc, char **argv) {
    char label[32], buf[64];
    for (int i = 1; i < argc; i++) {
        snprintf(label, sizeof label, "read%d", i);
        int fd = open(argv[i], O_RDONLY);
        if (fd < 0) { say(label, -1); continue; }
        say(label, read(fd, buf, sizeof buf));
    }
    return 0;
}
"#;

/// List each argument as a directory.
pub const LIST_DIRS: &str = r#"
int main(int argc, char **argv) {
    char label[32];
    for (int i = 1; i < argc; i++) {
        snprintf(label, sizeof label, "list%d", i);
        DIR *d = opendir(argv[i]);
        if (!d) { say(label, -1); continue; }
        int n = 0;
        while (readdir(d)) n++;
        printf("%s: ok %d\n", label, n);
    }
    return 0;
}
"#;

/// Write to each argument: `a:PATH` appends to an existing file, `c:PATH` creates one.
pub const WRITE_PATHS: &str = r#"
int main(int argc, char **argv) {
    char label[32];
    for (int i = 1; i < argc; i++) {
        snprintf(label, sizeof label, "write%d", i);
        int flags = argv[i][0] == 'c' ? O_WRONLY | O_CREAT | O_EXCL : O_WRONLY | O_APPEND;
        int fd = open(argv[i] + 2, flags, 0644);
        if (fd < 0) { say(label, -1); continue; }
        say(label, write(fd, "pwned\n", 6));
    }
    return 0;
}
"#;

pub const TCP_CONNECT: &str = r#"
int main(int argc, char **argv) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    say("socket", s);
    say("connect", connect(s, (struct sockaddr *)&a, sizeof a));
    return 0;
}
"#;

pub const TCP_BIND: &str = r#"
int main(void) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(41234) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    say("bind", bind(s, (struct sockaddr *)&a, sizeof a));
    return 0;
}
"#;

pub const UDP_SEND: &str = r#"
int main(int argc, char **argv) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    say("sendto", sendto(s, "leak", 4, 0, (struct sockaddr *)&a, sizeof a));
    return 0;
}
"#;

/// argv[1]: a host pid. Scan /proc and look at the host process.
pub const PROC_SCAN: &str = r#"
int main(int argc, char **argv) {
    char path[64];
    DIR *d = opendir("/proc");
    if (!d) say("list_proc", -1);
    else {
        int n = 0, max = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            int p = atoi(e->d_name);
            if (p > 0) { n++; if (p > max) max = p; }
        }
        printf("list_proc: ok %d %d\n", n, max);
    }
    snprintf(path, sizeof path, "/proc/%s/cmdline", argv[1]);
    say("host_cmdline", open(path, O_RDONLY));
    snprintf(path, sizeof path, "/proc/%s/environ", argv[1]);
    say("host_environ", open(path, O_RDONLY));
    return 0;
}
"#;

pub const GETENV: &str = r#"
int main(int argc, char **argv) {
    printf("getenv: %s\n", getenv(argv[1]) ? "present" : "absent");
    return 0;
}
"#;

/// argv[1]: a host pid.
pub const PTRACE: &str = r#"
int main(int argc, char **argv) {
    say("attach_host", ptrace(PTRACE_ATTACH, atoi(argv[1]), 0, 0));
    say("attach_parent", ptrace(PTRACE_ATTACH, getppid(), 0, 0));
    say("seize_parent", ptrace(PTRACE_SEIZE, getppid(), 0, 0));
    return 0;
}
"#;

pub const SIGNAL: &str = r#"
int main(int argc, char **argv) {
    say("kill0", kill(atoi(argv[1]), 0));
    pid_t pp = getppid();
    printf("ppid: %d\n", pp);
    if (pp > 0) say("killparent", kill(pp, SIGCONT));
    return 0;
}
"#;

pub const UNIX_CONNECT: &str = r#"
int main(int argc, char **argv) {
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    socklen_t len;
    if (argv[1][0] == '@') {
        memcpy(a.sun_path + 1, argv[1] + 1, strlen(argv[1]) - 1);
        len = offsetof(struct sockaddr_un, sun_path) + strlen(argv[1]);
    } else {
        strcpy(a.sun_path, argv[1]);
        len = sizeof a;
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    say("connect", connect(s, (struct sockaddr *)&a, len));
    return 0;
}
"#;

pub const SETUID: &str = r#"
int main(int argc, char **argv) {
    int fd = open(argv[1], O_WRONLY | O_CREAT, 0755);
    say("create", fd);
    close(fd);
    say("chmod", chmod(argv[1], 04755));
    struct stat st;
    stat(argv[1], &st);
    printf("mode: %o\n", st.st_mode & 07777);
    return 0;
}
"#;

pub const MKNOD: &str = r#"
int main(int argc, char **argv) {
    say("mknod_char", mknod(argv[1], S_IFCHR | 0666, makedev(1, 3)));
    say("mknod_block", mknod(argv[2], S_IFBLK | 0666, makedev(8, 0)));
    return 0;
}
"#;

pub const MOUNT: &str = r#"
int main(int argc, char **argv) {
    say("mount", mount("none", argv[1], "tmpfs", 0, 0));
    say("bind", mount("/", argv[1], 0, MS_BIND, 0));
    say("unshare", unshare(CLONE_NEWUSER | CLONE_NEWNS));
    say("mount_in_userns", mount("none", argv[1], "tmpfs", 0, 0));
    say("chroot", chroot("."));
    return 0;
}
"#;

/// Climb out of the cwd with `..` and list/read what is there.
pub const DOTDOT: &str = r#"
int main(int argc, char **argv) {
    char label[32], buf[64];
    for (int i = 1; i < argc; i++) {
        snprintf(label, sizeof label, "read%d", i);
        int fd = open(argv[i], O_RDONLY);
        if (fd < 0) { say(label, -1); continue; }
        say(label, read(fd, buf, sizeof buf));
    }
    for (int i = 0; i < 32; i++) chdir("..");
    char cwd[256];
    printf("cwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    DIR *d = opendir(".");
    say("list_top", d ? 0 : -1);
    return 0;
}
"#;

/// Make argv[2] a symlink to argv[1] and read through it.
pub const SYMLINK: &str = r#"
int main(int argc, char **argv) {
    char buf[64];
    say("symlink", symlink(argv[1], argv[2]));
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) say("read_through", -1);
    else say("read_through", read(fd, buf, sizeof buf));
    return 0;
}
"#;

/// Hard-link argv[1] to argv[2], argv[3] to argv[4].
pub const HARDLINK: &str = r#"
int main(int argc, char **argv) {
    say("link_host_file", link(argv[1], argv[2]));
    say("link_toolchain", link(argv[3], argv[4]));
    return 0;
}
"#;

pub const HANDLE: &str = r#"
int main(int argc, char **argv) {
    struct file_handle *h = malloc(sizeof *h + MAX_HANDLE_SZ);
    h->handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    if (say("name_to_handle", name_to_handle_at(AT_FDCWD, argv[1], h, &mount_id, 0)) == 0) {
        int mfd = open(argv[2], O_RDONLY | O_DIRECTORY);
        say("open_by_handle", open_by_handle_at(mfd, h, O_RDONLY));
    }
    return 0;
}
"#;

/// Change a file's metadata and name: chmod, utimes, truncate, unlink, rename, link.
pub const TAMPER: &str = r#"
int main(int argc, char **argv) {
    const char *f = argv[1];
    say("chmod", chmod(f, 0666));
    struct timespec t[2] = {{0, 0}, {0, 0}};
    say("utimes", utimensat(AT_FDCWD, f, t, 0));
    say("truncate", truncate(f, 0));
    say("link", link(f, "stolen"));
    say("rename", rename(f, "moved"));
    say("unlink", unlink(f));
    return 0;
}
"#;
