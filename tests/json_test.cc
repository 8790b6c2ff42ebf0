// Proves that JsonOut, our hand-written response writer, writes exactly the
// bytes RapidJSON's Writer<StringBuffer> writes for the same calls (it
// replaced it, and outbox bodies are compared with Stream's golden requests
// byte for byte), over every byte value, long and short strings, escapes at
// word boundaries, nesting, numbers and raw values; and that Release() hands
// the text over and leaves an empty writer.
#define BOOST_TEST_MODULE json_test
#include <boost/test/unit_test.hpp>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "json.h"

namespace offbrand {
namespace {

using RapidWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// Writes the same string as a value inside an array with both writers.
void ExpectSameString(const std::string& s) {
  rapidjson::StringBuffer buffer;
  RapidWriter w(buffer);
  w.StartArray();
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  w.Key(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  w.EndArray();
  JsonOut out;
  out.BeginArray().String(s).String(s).EndArray();
  BOOST_TEST(out.str() == std::string(buffer.GetString(), buffer.GetSize()));
}

BOOST_AUTO_TEST_CASE(EveryByteValueIsEscapedLikeRapidJson) {
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    ExpectSameString(std::string(1, ch));
    // The byte at every offset of a 17-byte string crosses the 8-byte scan.
    for (size_t at = 0; at < 17; ++at) {
      std::string s(17, 'a');
      s[at] = ch;
      ExpectSameString(s);
    }
  }
}

BOOST_AUTO_TEST_CASE(RandomStringsMatchRapidJson) {
  std::mt19937 rng(20261202);
  // Mostly printable text with a few bytes that need escaping, and UTF-8.
  const std::string alphabet = std::string("abcXYZ019 /<>&'\"\\\n\t\r\b\f\x01\x1f\x7f") +
                               "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  for (int n = 0; n < 2000; ++n) {
    std::string s(rng() % 300, ' ');
    for (char& ch : s) ch = alphabet[rng() % alphabet.size()];
    ExpectSameString(s);
  }
  ExpectSameString(std::string());
  ExpectSameString(std::string("nul\0inside", 10));
}

BOOST_AUTO_TEST_CASE(NestedDocumentMatchesRapidJson) {
  rapidjson::StringBuffer buffer;
  RapidWriter w(buffer);
  w.StartObject();
  w.Key("items");
  w.StartArray();
  for (int i = 0; i < 3; ++i) {
    w.StartObject();
    w.Key("id");
    w.Uint64(std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(i));
    w.Key("neg");
    w.Int64(std::numeric_limits<int64_t>::min() + i);
    w.Key("zero");
    w.Int64(0);
    w.Key("ok");
    w.Bool(i % 2 == 0);
    w.Key("none");
    w.Null();
    w.Key("actor");
    w.RawValue("{\"id\":1}", 8, rapidjson::kObjectType);
    w.Key("empty");
    w.StartArray();
    w.EndArray();
    w.Key("obj");
    w.StartObject();
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.Key("next");
  w.String("abc");
  w.EndObject();

  JsonOut out;
  out.BeginObject().Key("items").BeginArray();
  for (int i = 0; i < 3; ++i) {
    out.BeginObject();
    out.Key("id").Uint(std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(i));
    out.Key("neg").Int(std::numeric_limits<int64_t>::min() + i);
    out.Key("zero").Int(0);
    out.Key("ok").Bool(i % 2 == 0);
    out.Key("none").Null();
    out.Key("actor").Raw("{\"id\":1}");
    out.Key("empty").BeginArray().EndArray();
    out.Key("obj").BeginObject().EndObject();
    out.EndObject();
  }
  out.EndArray().Field("next", "abc").EndObject();
  BOOST_TEST(out.str() == std::string(buffer.GetString(), buffer.GetSize()));
}

BOOST_AUTO_TEST_CASE(FieldWritesNullForEmptyOnlyWhenAsked) {
  JsonOut out;
  out.BeginObject().Field("a", "").Field("b", "", true).Field("c", "x", true).EndObject();
  BOOST_TEST(out.str() == R"({"a":"","b":null,"c":"x"})");
}

BOOST_AUTO_TEST_CASE(DoublesReadBackAndNonFiniteBecomesNull) {
  JsonOut out;
  out.BeginArray().Double(0.1).Double(-2.5).Double(1e300);
  out.Double(std::numeric_limits<double>::quiet_NaN());
  out.Double(std::numeric_limits<double>::infinity()).EndArray();
  BOOST_TEST(out.str() == "[0.1,-2.5,1e+300,null,null]");
}

BOOST_AUTO_TEST_CASE(ReleaseMovesTheTextOutAndLeavesAnEmptyWriter) {
  JsonOut out(64);
  out.BeginObject().Field("k", "v").EndObject();
  const std::string text = out.Release();
  BOOST_TEST(text == R"({"k":"v"})");
  BOOST_TEST(out.view().empty());
  out.BeginArray().Uint(1).EndArray();
  BOOST_TEST(out.str() == "[1]");
}

}  // namespace
}  // namespace offbrand
