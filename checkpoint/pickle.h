// A restricted, non-executing unpickler for the pickles a DCP checkpoint contains: `.metadata`
// (protocols 2-5) and the `data.pkl` of torch.save records (protocol 2).
//
// It never calls anything. GLOBAL / STACK_GLOBAL resolve only names on the caller's allow-list;
// REDUCE and NEWOBJ build inert `kCall` / `kNewObj` nodes that a schema-aware decoder (see
// metadata_parser.h, torch_record.h) interprets. Opcodes outside the supported subset (INST, OBJ,
// NEWOBJ_EX, PERSID, EXT*, out-of-band buffers, protocol-0 text opcodes) are refused by name.
//
//   UnpickleOptions opts;
//   opts.allowed_globals = &kMyGlobals;  // e.g. {"torch.Size", ...}
//   SC_ASSIGN_OR_RETURN(auto doc, Unpickle(bytes, opts));
//   const PickleValue* root = doc->root();
#ifndef SHARDCAST_CHECKPOINT_PICKLE_H_
#define SHARDCAST_CHECKPOINT_PICKLE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shardcast {

struct PickleValue {
  enum class Kind {
    kNone, kBool, kInt, kFloat, kString, kBytes,
    kTuple, kList, kDict, kSet,
    kGlobal,        // module + name
    kCall,          // REDUCE: callable(args)
    kNewObj,        // NEWOBJ: cls.__new__(cls, *args)
    kPersistentId,  // BINPERSID: items[0] is the id
  };
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string str;                   // kString, kBytes; kGlobal: the module
  std::string name;                  // kGlobal: the attribute name
  std::vector<PickleValue*> items;   // kTuple, kList, kSet, kPersistentId
  std::vector<std::pair<PickleValue*, PickleValue*>> entries;  // kDict
  PickleValue* callable = nullptr;   // kCall, kNewObj
  PickleValue* args = nullptr;       // kCall, kNewObj (a tuple)
  PickleValue* state = nullptr;      // set by BUILD on kCall / kNewObj; nullptr if none

  bool IsGlobal(absl::string_view module, absl::string_view attr) const {
    return kind == Kind::kGlobal && str == module && name == attr;
  }
  // For kCall / kNewObj whose callable is a global: "module.name"; else "".
  std::string CalleeName() const;
  // Looks up a string key in a kDict; nullptr if absent or not a dict.
  const PickleValue* DictGet(absl::string_view key) const;
};

const char* PickleKindName(PickleValue::Kind kind);

// A short, depth-limited rendering for error messages, e.g. "torch.Size(((8, 4),))".
std::string PickleDebugString(const PickleValue* v, int max_depth = 4);

// Owns every value of one unpickled document (values may be shared through the memo).
class PickleDocument {
 public:
  const PickleValue* root() const { return root_; }

 private:
  friend class Unpickler;
  std::deque<PickleValue> arena_;
  PickleValue* root_ = nullptr;
  uint64_t memory_bytes_ = 0;

 public:
  // What the unpickler charged against UnpickleOptions::max_memory_bytes.
  uint64_t memory_bytes() const { return memory_bytes_; }
};

struct UnpickleOptions {
  // "module.name" of every global the document may reference (not owned; nullptr: none).
  const absl::flat_hash_set<std::string>* allowed_globals = nullptr;
  // Whether BINPERSID is accepted (torch.save's data.pkl uses it, `.metadata` does not).
  bool allow_persistent_id = false;
  // Caps against hostile input.
  size_t max_memo = 1 << 22;
  size_t max_stack = 1 << 22;
  size_t max_string_bytes = 1 << 26;
  // Memory the document may take (values, strings, container slots, memo), checked as it grows:
  // ResourceExhausted naming both numbers past it. 0: kMemoryPerInputByte x the input size plus
  // kMemorySlack, i.e. bounded relative to the input (a real `.metadata` needs far less).
  uint64_t max_memory_bytes = 0;
  static constexpr uint64_t kMemoryPerInputByte = 64;
  static constexpr uint64_t kMemorySlack = 16ull << 20;
  // Names the document in error messages, e.g. the file path.
  std::string source = "pickle";
};

// Parses `data` up to its STOP opcode. Errors (InvalidArgument; ResourceExhausted past the
// memory cap) name the source, the byte offset and what was wrong.
absl::StatusOr<std::unique_ptr<PickleDocument>> Unpickle(absl::string_view data, const UnpickleOptions& options);

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_PICKLE_H_
