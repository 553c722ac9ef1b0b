#pragma once
// Crash-safe publication of files and directories: write under a temporary name in the same directory,
// flush to disk, then rename into place. rename(2) within one file system is atomic, so a reader (or a
// resumed run after a crash) sees the old version or the new one, never a torn mix. POSIX only.

#include <trainpp/detail/config.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

namespace trainpp {

namespace detail {

/// The message for an errno value (thread-safe, unlike strerror).
[[nodiscard]] inline std::string errno_message(int code) { return std::generic_category().message(code); }

/// A short random hex suffix: together with the pid it keeps concurrent writers (threads, processes,
/// ranks sharing a file system) from picking the same temporary name.
[[nodiscard]] std::string random_suffix();

/// Closes a file descriptor on scope exit.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }
  /// Closes now and reports close(2)'s errno (0 on success): on some file systems a failed write only
  /// shows up here.
  int close() {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

/// `path` with an empty file name ("dir/") reduced to the directory itself ("dir").
[[nodiscard]] inline std::filesystem::path without_trailing_separator(const std::filesystem::path& path) {
  return path.has_filename() ? path : path.parent_path();
}

/// The directory holding `path` ("." for a bare name).
[[nodiscard]] inline std::filesystem::path parent_or_dot(const std::filesystem::path& path) {
  auto parent = without_trailing_separator(path).parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

/// fsync(2) on a file or directory, so that its contents (for a directory: the names in it, which is
/// what makes a rename durable) reach the disk.
void fsync_path(const std::filesystem::path& path, bool directory);

inline void rename_or_throw(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    throw error("cannot rename {} to {}: {}", from.string(), to.string(), errno_message(errno));
}

}  // namespace detail

/// Writes `bytes` to `path` atomically: a crash at any moment leaves either the previous file or the
/// complete new one. The bytes go to "<path>.tmp-<pid>-<random>" in the same directory, which is synced,
/// renamed over `path`, and the directory synced. The directory must exist. Throws trainpp::Error naming
/// the path and the system's reason; the temporary file is removed on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

/// Creates and returns an empty staging directory for `final_dir`, "<parent>/.tmp-<name>-<pid>-<random>"
/// (creating the parent if needed). The leading ".tmp-" keeps it from matching what readers look for
/// (such as "checkpoint-*"), so an abandoned one is never mistaken for a result. Fill it, then call
/// commit_dir.
[[nodiscard]] std::filesystem::path make_staging_dir(const std::filesystem::path& final_dir);

/// Publishes the filled `staging` directory as `final_dir`: syncs every file and directory in it,
/// renames it to `final_dir`, and syncs the parent. An existing `final_dir` is replaced: swapped in one
/// atomic step where the system offers it (Linux renameat2 RENAME_EXCHANGE), otherwise renamed aside,
/// the new one renamed in, and the old one removed. Both must be on the same file system (as
/// make_staging_dir arranges). Throws trainpp::Error naming the paths and the reason.
void commit_dir(const std::filesystem::path& staging, const std::filesystem::path& final_dir);

/// The whole contents of the file at `path`. Throws trainpp::Error naming the path and the reason if it
/// is missing or unreadable.
[[nodiscard]] std::string read_file(const std::filesystem::path& path);

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE std::string random_suffix() {
  thread_local std::mt19937_64 engine{(static_cast<std::uint64_t>(std::random_device{}()) << 32) ^
                                      std::random_device{}()};
  return fmt::format("{:016x}", engine());
}

TRAINPP_INLINE void fsync_path(const std::filesystem::path& path, bool directory) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0)));
  if (fd.get() < 0) throw error("cannot open {} to sync it: {}", path.string(), errno_message(errno));
  // EINVAL: the file system cannot sync this kind of file (some do not sync directories); there is
  // nothing more to do for it.
  if (::fsync(fd.get()) != 0 && errno != EINVAL)
    throw error("cannot sync {} to disk: {}", path.string(), errno_message(errno));
}

}  // namespace detail

TRAINPP_INLINE void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  const auto tmp = std::filesystem::path(
      fmt::format("{}.tmp-{}-{}", detail::without_trailing_separator(path).string(), ::getpid(),
                  detail::random_suffix()));
  detail::FileDescriptor fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (fd.get() < 0) throw error("cannot write {}: cannot create {}: {}", path.string(), tmp.string(),
                                detail::errno_message(errno));
  auto fail = [&](std::string_view what, int code) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    return error("cannot write {}: {} failed: {}", path.string(), what, detail::errno_message(code));
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ::ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw fail("write", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) throw fail("fsync", errno);
  if (const int code = fd.close(); code != 0) throw fail("close", code);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw fail("rename", errno);
  detail::fsync_path(detail::parent_or_dot(path), /*directory=*/true);
}

TRAINPP_INLINE std::filesystem::path make_staging_dir(const std::filesystem::path& final_dir) {
  const auto final_path = detail::without_trailing_separator(final_dir);
  const auto parent = detail::parent_or_dot(final_path);
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) throw error("cannot create directory {}: {}", parent.string(), ec.message());
  const auto staging = parent / fmt::format(".tmp-{}-{}-{}", final_path.filename().string(), ::getpid(),
                                            detail::random_suffix());
  if (::mkdir(staging.c_str(), 0777) != 0)
    throw error("cannot create staging directory {}: {}", staging.string(), detail::errno_message(errno));
  return staging;
}

TRAINPP_INLINE void commit_dir(const std::filesystem::path& staging, const std::filesystem::path& final_dir) {
  namespace fs = std::filesystem;
  const auto final_path = detail::without_trailing_separator(final_dir);
  std::error_code ec;
  if (!fs::is_directory(staging, ec)) throw error("cannot commit {}: it is not a directory", staging.string());

  // Contents first, then the directories that name them: after the rename, everything it publishes
  // is already on disk.
  for (auto it = fs::recursive_directory_iterator(staging, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const auto status = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_regular_file(status)) detail::fsync_path(it->path(), false);
    if (fs::is_directory(status)) detail::fsync_path(it->path(), true);
  }
  if (ec) throw error("cannot commit {}: listing it failed: {}", staging.string(), ec.message());
  detail::fsync_path(staging, true);

  const auto parent = detail::parent_or_dot(final_path);
  if (!fs::exists(fs::symlink_status(final_path, ec))) {
    detail::rename_or_throw(staging, final_path);
  } else {
    bool swapped = false;
#if defined(__linux__) && defined(RENAME_EXCHANGE)
    // One atomic swap: readers see the old directory or the new one, even across a crash.
    if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, final_path.c_str(), RENAME_EXCHANGE) == 0) {
      swapped = true;
      fs::remove_all(staging, ec);  // now the old directory; a leftover ".tmp-" name is harmless
    } else if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
      throw error("cannot replace {} with {}: {}", final_path.string(), staging.string(),
                  detail::errno_message(errno));
    }
#endif
    if (!swapped) {
      // No atomic swap here: a crash between the two renames leaves the old version under the
      // ".tmp-" name beside it, recoverable by hand and never mistaken for a result.
      const auto aside = parent / fmt::format(".tmp-{}-old-{}-{}", final_path.filename().string(), ::getpid(),
                                              detail::random_suffix());
      detail::rename_or_throw(final_path, aside);
      if (std::rename(staging.c_str(), final_path.c_str()) != 0) {
        const int code = errno;
        std::rename(aside.c_str(), final_path.c_str());  // best effort: put the old one back
        throw error("cannot rename {} to {}: {}", staging.string(), final_path.string(),
                    detail::errno_message(code));
      }
      fs::remove_all(aside, ec);
    }
  }
  detail::fsync_path(parent, true);
}

TRAINPP_INLINE std::string read_file(const std::filesystem::path& path) {
  detail::FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw error("cannot read {}: {}", path.string(), detail::errno_message(errno));
  struct ::stat info {};
  if (::fstat(fd.get(), &info) != 0) throw error("cannot read {}: {}", path.string(), detail::errno_message(errno));
  std::string out;
  if (S_ISREG(info.st_mode)) out.reserve(static_cast<std::size_t>(info.st_size));
  char buffer[1 << 16];
  for (;;) {
    const ::ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw error("cannot read {}: {}", path.string(), detail::errno_message(errno));
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
