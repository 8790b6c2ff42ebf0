// Status and Result<T>: how every module reports failure.
//
// A Status is either OK or carries a Code and a message for people. Errors are
// values: no exception crosses a module boundary. Library exceptions are caught
// at the edges (the HTTP exception handler and the top of the sync loop).
//
// Codes map one-to-one onto the HTTP statuses of SPEC section 3 so that a
// domain function's failure can be answered without translation tables.
//
// Thread-safety: plain values; copy freely.
#ifndef OFFBRAND_STATUS_H_
#define OFFBRAND_STATUS_H_

#include <optional>
#include <string>
#include <utility>

namespace offbrand {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,   // 400 malformed request
    kUnauthenticated,   // 401
    kForbidden,         // 403
    kNotFound,          // 404
    kConflict,          // 409
    kTooLarge,          // 413
    kUnsupportedMedia,  // 415
    kInvalidField,      // 422
    kRateLimited,       // 429
    kUnavailable,       // 503: store failed, or a dependency is not configured
    kStorageFull,       // 507: LMDB map full even after growing
    kInternal,          // 500: a bug or an unexpected library failure
  };

  Status() = default;
  static Status Ok() { return Status(); }
  // `error_code` is the snake_case code of the SPEC error object; `field`
  // names the offending request field, when there is one.
  static Status Error(Code code, std::string error_code, std::string message,
                      std::string field = {}) {
    Status s;
    s.code_ = code;
    s.error_code_ = std::move(error_code);
    s.message_ = std::move(message);
    s.field_ = std::move(field);
    return s;
  }
  static Status Internal(std::string message) {
    return Error(Code::kInternal, "internal", std::move(message));
  }
  static Status NotFound(std::string message = "not found") {
    return Error(Code::kNotFound, "not_found", std::move(message));
  }
  static Status Invalid(std::string field, std::string message) {
    return Error(Code::kInvalidField, "invalid_field", std::move(message), std::move(field));
  }
  static Status BadRequest(std::string error_code, std::string message, std::string field = {}) {
    return Error(Code::kInvalidArgument, std::move(error_code), std::move(message), std::move(field));
  }
  static Status Forbidden(std::string error_code = "forbidden",
                          std::string message = "you may not do this") {
    return Error(Code::kForbidden, std::move(error_code), std::move(message));
  }
  static Status Conflict(std::string error_code, std::string message, std::string field = {}) {
    return Error(Code::kConflict, std::move(error_code), std::move(message), std::move(field));
  }

  bool ok() const { return code_ == Code::kOk; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  Code code() const { return code_; }
  const std::string& error_code() const { return error_code_; }
  const std::string& message() const { return message_; }
  const std::string& field() const { return field_; }
  // The HTTP status this failure is answered with (200 for OK).
  int http_status() const;
  std::string ToString() const { return ok() ? "OK" : error_code_ + ": " + message_; }

 private:
  Code code_ = Code::kOk;
  std::string error_code_;
  std::string message_;
  std::string field_;
};

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

inline int Status::http_status() const {
  switch (code_) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kForbidden: return 403;
    case Code::kNotFound: return 404;
    case Code::kConflict: return 409;
    case Code::kTooLarge: return 413;
    case Code::kUnsupportedMedia: return 415;
    case Code::kInvalidField: return 422;
    case Code::kRateLimited: return 429;
    case Code::kUnavailable: return 503;
    case Code::kStorageFull: return 507;
    case Code::kInternal: return 500;
  }
  return 500;
}

}  // namespace offbrand

#endif  // OFFBRAND_STATUS_H_
