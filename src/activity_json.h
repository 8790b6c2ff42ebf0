// Activity JSON writers shared by the outbox producers (collections.cc) and
// the offline feed reads (feeds.cc), so a feed page served from LMDB shows
// exactly the fields Stream receives.
//
// Each function writes the *fields* of one activity into an object the
// caller has opened (out.BeginObject() before, out.EndObject() after), so a
// feed read can add fields of its own ("id") around them without re-parsing.
//
// `actor_json`: empty writes the Stream reference "SU:<author id>" (what the
// outbox sends); otherwise it is one complete JSON object written verbatim
// (the enriched actor {id, username, gravatar} of a feed read).
//
// Thread-safety: pure functions.
#ifndef OFFBRAND_ACTIVITY_JSON_H_
#define OFFBRAND_ACTIVITY_JSON_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "json.h"
#include "offbrand/model.h"

namespace offbrand {

// Stream's time "YYYY-MM-DDTHH:MM:SS.ffffff" of `unix_us` (UTC) written into
// `buf` without allocating; returns the view of the 26 bytes written. Same
// text as model.h's FormatStreamTime for every time from year 1970 to 9999,
// which the feed reads call once per entry.
std::string_view FormatStreamTimeTo(int64_t unix_us, char (&buf)[32]);

// actor, verb "create", object, foreign_id "Collection:<id>", time (the
// row's created_us in Stream's format), create (= name), name, description.
void WriteCollectionActivityFields(JsonOut& out, const Collection& c,
                                   std::string_view actor_json);

// actor, verb "post", object, foreign_id "Content:<id>", time, post (= title),
// url, description (only when non-empty), image (only when set), and
// collection {"id":"<cid>","name":<collection name>}.
void WriteItemActivityFields(JsonOut& out, const Item& i, const Collection& c,
                             std::string_view actor_json);

}  // namespace offbrand

#endif  // OFFBRAND_ACTIVITY_JSON_H_
