// Codec: the little binary encoding of rows and outbox records. Integers are
// fixed-width little-endian-free (big-endian) and strings are a u32 length
// followed by the bytes. Decoder methods return false at the end of input or
// on a length that overruns it, so a truncated value is detected, not read.
//
// Thread-safety: plain values.
#ifndef OFFBRAND_CODEC_H_
#define OFFBRAND_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace offbrand {

class Encoder {
 public:
  Encoder& U8(uint8_t v) { out_.push_back(static_cast<char>(v)); return *this; }
  Encoder& U32(uint32_t v) {
    for (int i = 3; i >= 0; --i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  Encoder& U64(uint64_t v) {
    for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  Encoder& I64(int64_t v) { return U64(static_cast<uint64_t>(v)); }
  Encoder& Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s.data(), s.size());
    return *this;
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) {
    if (in_.size() < 1) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* v) {
    if (in_.size() < 4) return false;
    uint32_t r = 0;
    for (int i = 0; i < 4; ++i) r = (r << 8) | static_cast<uint8_t>(in_[i]);
    *v = r;
    in_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* v) {
    if (in_.size() < 8) return false;
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r = (r << 8) | static_cast<uint8_t>(in_[i]);
    *v = r;
    in_.remove_prefix(8);
    return true;
  }
  bool I64(int64_t* v) {
    uint64_t u;
    if (!U64(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  bool Str(std::string* s) {
    uint32_t n;
    if (!U32(&n) || in_.size() < n) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

}  // namespace offbrand

#endif  // OFFBRAND_CODEC_H_
