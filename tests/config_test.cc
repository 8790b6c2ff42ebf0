// Proves how settings are read: the EnvironmentFile parser (comments, quotes,
// malformed lines), the environment winning over the file, the Stream secret
// from a file or a systemd credential, OFFBRAND_LISTEN parsing, and the
// generated secret key file (0600, created once, then reused), and that feed
// group names must be distinct Stream slugs.
#define BOOST_TEST_MODULE config_test
#include <boost/test/unit_test.hpp>

#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "offbrand/config.h"
#include "test_support.h"

extern char** environ;

namespace offbrand {
namespace {

using test::TempDir;

// Clears OFFBRAND_* and CREDENTIALS_DIRECTORY for the test and restores the
// previous environment afterwards.
class CleanEnv {
 public:
  CleanEnv() {
    std::vector<std::string> names;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string kv(*e);
      std::string name = kv.substr(0, kv.find('='));
      if (name.rfind("OFFBRAND_", 0) == 0 || name == "CREDENTIALS_DIRECTORY") {
        saved_[name] = kv.substr(kv.find('=') + 1);
        names.push_back(name);
      }
    }
    for (const auto& n : names) unsetenv(n.c_str());
  }
  ~CleanEnv() {
    for (const auto& n : set_) unsetenv(n.c_str());
    for (const auto& [k, v] : saved_) setenv(k.c_str(), v.c_str(), 1);
  }
  void Set(const std::string& name, const std::string& value) {
    setenv(name.c_str(), value.c_str(), 1);
    set_.push_back(name);
  }

 private:
  std::map<std::string, std::string> saved_;
  std::vector<std::string> set_;
};

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  BOOST_REQUIRE(out.good());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

Config MustLoad(const std::string& file = "") {
  Result<Config> c = LoadConfig(file);
  BOOST_REQUIRE_MESSAGE(c.ok(), "LoadConfig: " << c.status().ToString());
  return *c;
}

BOOST_AUTO_TEST_CASE(EnvFileSkipsCommentsAndBlankLinesAndStripsQuotes) {
  std::map<std::string, std::string> vars;
  Status s = ParseEnvFile(
      "# a comment\n"
      "\n"
      "   \n"
      "OFFBRAND_DATA_DIR=/var/lib/offbrand\n"
      "OFFBRAND_SMTP_FROM=\"Offbrand <no-reply@example.com>\"\n"
      "OFFBRAND_PUBLIC_URL='https://links.example.com'\n"
      "  OFFBRAND_LOG_LEVEL = debug  \n"
      "OFFBRAND_SMTP_URL=smtp://u:p@host/?a=b\n"
      "OFFBRAND_EMPTY=\n"
      "OFFBRAND_LAST=no newline at end",
      &vars);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(vars.size() == 7u);
  BOOST_TEST(vars["OFFBRAND_DATA_DIR"] == "/var/lib/offbrand");
  BOOST_TEST(vars["OFFBRAND_SMTP_FROM"] == "Offbrand <no-reply@example.com>");
  BOOST_TEST(vars["OFFBRAND_PUBLIC_URL"] == "https://links.example.com");
  BOOST_TEST(vars["OFFBRAND_LOG_LEVEL"] == "debug");
  BOOST_TEST(vars["OFFBRAND_SMTP_URL"] == "smtp://u:p@host/?a=b");  // '=' in the value
  BOOST_TEST(vars.count("OFFBRAND_EMPTY") == 1u);
  BOOST_TEST(vars["OFFBRAND_EMPTY"] == "");
  BOOST_TEST(vars["OFFBRAND_LAST"] == "no newline at end");
  BOOST_TEST(vars.count("# a comment") == 0u);
}

BOOST_AUTO_TEST_CASE(EnvFileMalformedLineIsAnErrorNamingTheLine) {
  std::map<std::string, std::string> vars;
  Status s = ParseEnvFile("OFFBRAND_A=1\n# fine\nthis line has no equals sign\nOFFBRAND_B=2\n",
                          &vars);
  BOOST_TEST(!s.ok());
  BOOST_TEST(s.message().find("3") != std::string::npos, s.message());
  std::map<std::string, std::string> more;
  BOOST_TEST(!ParseEnvFile("=value without a name\n", &more).ok());
  BOOST_TEST(!ParseEnvFile("BAD NAME=x\n", &more).ok());
}

BOOST_AUTO_TEST_CASE(DefaultsWithoutAnySetting) {
  CleanEnv env;
  Config c = MustLoad();
  BOOST_TEST(c.listen_host == "127.0.0.1");
  BOOST_TEST(c.listen_port == 8080);
  BOOST_TEST(c.data_dir == "./data");
  BOOST_TEST(c.public_url == "http://127.0.0.1:8080");
  BOOST_TEST(c.stream_base_url == "https://api.stream-io-api.com/api/v1.0/");
  BOOST_TEST(c.feed_user == "User");
  BOOST_TEST(c.feed_collections == "Collections");
  BOOST_TEST(c.feed_timeline == "Timeline");
  BOOST_TEST(c.feed_notifications == "Notifications");
  BOOST_TEST(c.secret_key.empty());
  BOOST_TEST(!c.stream_configured());
}

BOOST_AUTO_TEST_CASE(EnvironmentWinsOverTheFile) {
  CleanEnv env;
  TempDir dir;
  const std::string file = dir.Sub("offbrand.env");
  WriteFile(file,
            "OFFBRAND_DATA_DIR=/from/file\n"
            "OFFBRAND_LOG_LEVEL=debug\n"
            "OFFBRAND_ADMIN_EMAIL=Admin@Example.COM\n"
            "OFFBRAND_STREAM_API_KEY=file-key\n");
  env.Set("OFFBRAND_DATA_DIR", "/from/env");
  env.Set("OFFBRAND_STREAM_API_KEY", "env-key");
  Config c = MustLoad(file);
  BOOST_TEST(c.data_dir == "/from/env");
  BOOST_TEST(c.stream_api_key == "env-key");
  BOOST_TEST(c.log_level == "debug");                   // only in the file
  BOOST_TEST(c.admin_email == "admin@example.com");     // lowercased
}

BOOST_AUTO_TEST_CASE(UnreadableOrMalformedConfigFileFails) {
  CleanEnv env;
  TempDir dir;
  BOOST_TEST(!LoadConfig(dir.Sub("missing.env")).ok());
  WriteFile(dir.Sub("bad.env"), "OFFBRAND_DATA_DIR=/x\nnonsense\n");
  Result<Config> bad = LoadConfig(dir.Sub("bad.env"));
  BOOST_TEST(!bad.ok());
}

BOOST_AUTO_TEST_CASE(StreamSecretFromAFile) {
  CleanEnv env;
  TempDir dir;
  WriteFile(dir.Sub("secret"), "s3cret-from-file\n");
  env.Set("OFFBRAND_STREAM_API_KEY", "key");
  env.Set("OFFBRAND_STREAM_API_SECRET_FILE", dir.Sub("secret"));
  Config c = MustLoad();
  BOOST_TEST(c.stream_api_secret == "s3cret-from-file");
  BOOST_TEST(c.stream_configured());
}

BOOST_AUTO_TEST_CASE(StreamSecretFromASystemdCredential) {
  CleanEnv env;
  TempDir dir;
  WriteFile(dir.Sub("stream_api_secret"), "s3cret-credential\n");
  env.Set("CREDENTIALS_DIRECTORY", dir.path());
  Config c = MustLoad();
  BOOST_TEST(c.stream_api_secret == "s3cret-credential");
}

BOOST_AUTO_TEST_CASE(DirectStreamSecretWinsOverFileAndCredential) {
  CleanEnv env;
  TempDir dir;
  WriteFile(dir.Sub("stream_api_secret"), "from-credential\n");
  WriteFile(dir.Sub("secret"), "from-file\n");
  env.Set("CREDENTIALS_DIRECTORY", dir.path());
  env.Set("OFFBRAND_STREAM_API_SECRET_FILE", dir.Sub("secret"));
  env.Set("OFFBRAND_STREAM_API_SECRET", "direct");
  BOOST_TEST(MustLoad().stream_api_secret == "direct");
}

BOOST_AUTO_TEST_CASE(MissingStreamSecretFileIsAnError) {
  CleanEnv env;
  TempDir dir;
  env.Set("OFFBRAND_STREAM_API_SECRET_FILE", dir.Sub("nope"));
  BOOST_TEST(!LoadConfig("").ok());
}

BOOST_AUTO_TEST_CASE(ListenParsesHostAndPort) {
  CleanEnv env;
  env.Set("OFFBRAND_LISTEN", "0.0.0.0:9000");
  Config c = MustLoad();
  BOOST_TEST(c.listen_host == "0.0.0.0");
  BOOST_TEST(c.listen_port == 9000);
  BOOST_TEST(c.public_url == "http://0.0.0.0:9000");

  env.Set("OFFBRAND_LISTEN", "[::1]:8443");
  c = MustLoad();
  BOOST_TEST(c.listen_host == "::1");
  BOOST_TEST(c.listen_port == 8443);

  env.Set("OFFBRAND_LISTEN", "127.0.0.1:0");
  BOOST_TEST(MustLoad().listen_port == 0);
}

BOOST_AUTO_TEST_CASE(BadListenValuesAreRejected) {
  CleanEnv env;
  for (const char* bad : {"localhost", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536",
                          "127.0.0.1:-1", "127.0.0.1:80x"}) {
    env.Set("OFFBRAND_LISTEN", bad);
    Result<Config> c = LoadConfig("");
    BOOST_TEST(!c.ok(), "accepted OFFBRAND_LISTEN=" << bad);
  }
}

BOOST_AUTO_TEST_CASE(NumericSettingsMustBeNumbers) {
  CleanEnv env;
  env.Set("OFFBRAND_STREAM_TIMEOUT_MS", "2500");
  env.Set("OFFBRAND_SYNC_RETRY_MAX_MS", "60000");
  Config c = MustLoad();
  BOOST_TEST(c.stream_timeout_ms == 2500);
  BOOST_TEST(c.sync_retry_max_ms == 60000);
  env.Set("OFFBRAND_STREAM_TIMEOUT_MS", "soon");
  BOOST_TEST(!LoadConfig("").ok());
}

BOOST_AUTO_TEST_CASE(PublicUrlIsKeptWithoutTrailingSlash) {
  CleanEnv env;
  env.Set("OFFBRAND_PUBLIC_URL", "https://links.example.com/");
  BOOST_TEST(MustLoad().public_url == "https://links.example.com");
}

BOOST_AUTO_TEST_CASE(EnsureSecretKeyGeneratesA0600FileOnceAndReusesIt) {
  TempDir dir;
  Config first;
  first.data_dir = dir.Sub("data");
  Status s = EnsureSecretKey(&first);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(first.secret_key.size() >= 32u);  // at least 256 bits of text
  const std::string path = first.data_dir + "/secret_key";
  struct stat st {};
  BOOST_REQUIRE(stat(path.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  const std::string file_before = ReadFile(path);
  BOOST_TEST(file_before.find(first.secret_key) != std::string::npos);

  Config second;
  second.data_dir = first.data_dir;
  BOOST_REQUIRE(EnsureSecretKey(&second).ok());
  BOOST_TEST(second.secret_key == first.secret_key);
  BOOST_TEST(ReadFile(path) == file_before);

  // Another data dir gets another key.
  Config other;
  other.data_dir = dir.Sub("other");
  BOOST_REQUIRE(EnsureSecretKey(&other).ok());
  BOOST_TEST(other.secret_key != first.secret_key);
}

BOOST_AUTO_TEST_CASE(EnsureSecretKeyKeepsAConfiguredKeyAndWritesNoFile) {
  TempDir dir;
  Config c;
  c.data_dir = dir.path();
  c.secret_key = "configured-secret-key-0123456789";
  BOOST_REQUIRE(EnsureSecretKey(&c).ok());
  BOOST_TEST(c.secret_key == "configured-secret-key-0123456789");
  struct stat st {};
  BOOST_TEST(stat(dir.Sub("secret_key").c_str(), &st) != 0);
}

BOOST_AUTO_TEST_CASE(FeedGroupNamesThatAreNotStreamSlugsAreRefusedNamingTheVariable) {
  // Regression: OFFBRAND_FEED_USER= (empty) was accepted and produced
  // feed//1/ paths; ':' or '/' would break feed ids and paths.
  const std::vector<std::string> groups = {"OFFBRAND_FEED_USER", "OFFBRAND_FEED_COLLECTIONS",
                                           "OFFBRAND_FEED_TIMELINE", "OFFBRAND_FEED_NOTIFICATIONS"};
  const std::vector<std::string> bad = {"",        "a:b",  "a/b",        "with space",
                                        "dash-ed", "dot.", "t\xc3\xa9", "%41",
                                        std::string(65, 'x')};
  for (const std::string& name : groups) {
    for (const std::string& value : bad) {
      CleanEnv env;
      env.Set(name, value);
      Result<Config> c = LoadConfig("");
      BOOST_TEST(!c.ok(), name << "='" << value << "' was accepted");
      if (c.ok()) continue;
      BOOST_TEST(c.status().error_code() == "bad_config");
      BOOST_TEST(c.status().message().find(name) != std::string::npos, c.status().message());
    }
  }
  // The same rule holds for a value from the file.
  TempDir dir;
  WriteFile(dir.Sub("env"), "OFFBRAND_FEED_TIMELINE=time:line\n");
  CleanEnv env;
  Result<Config> from_file = LoadConfig(dir.Sub("env"));
  BOOST_TEST(!from_file.ok());
  BOOST_TEST(from_file.status().message().find("OFFBRAND_FEED_TIMELINE") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(FeedGroupNamesOfLettersDigitsAndUnderscoresUpTo64AreAccepted) {
  CleanEnv env;
  env.Set("OFFBRAND_FEED_USER", "people_2");
  env.Set("OFFBRAND_FEED_COLLECTIONS", "L");
  env.Set("OFFBRAND_FEED_TIMELINE", std::string(64, 't'));
  env.Set("OFFBRAND_FEED_NOTIFICATIONS", "Alerts_");
  Config c = MustLoad();
  BOOST_TEST(c.feed_user == "people_2");
  BOOST_TEST(c.feed_collections == "L");
  BOOST_TEST(c.feed_timeline == std::string(64, 't'));
  BOOST_TEST(c.feed_notifications == "Alerts_");
  BOOST_TEST(IsValidFeedGroup("User"));
  BOOST_TEST(!IsValidFeedGroup("User:1"));
}

BOOST_AUTO_TEST_CASE(TwoFeedGroupsWithOneNameAreRefused) {
  // User:<id> and Collections:<id> would be one Stream feed.
  CleanEnv env;
  env.Set("OFFBRAND_FEED_COLLECTIONS", "User");
  Result<Config> c = LoadConfig("");
  BOOST_REQUIRE(!c.ok());
  BOOST_TEST(c.status().message().find("OFFBRAND_FEED_COLLECTIONS") != std::string::npos,
             c.status().message());
  BOOST_TEST(c.status().message().find("OFFBRAND_FEED_USER") != std::string::npos,
             c.status().message());
}

}  // namespace
}  // namespace offbrand
