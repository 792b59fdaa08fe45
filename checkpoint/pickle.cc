#include "checkpoint/pickle.h"

#include <cstring>
#include <optional>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace shardcast {

using Kind = PickleValue::Kind;

const char* PickleKindName(Kind kind) {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kBytes: return "bytes";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kSet: return "set";
    case Kind::kGlobal: return "global";
    case Kind::kCall: return "call";
    case Kind::kNewObj: return "object";
    case Kind::kPersistentId: return "persistent_id";
  }
  return "?";
}

std::string PickleValue::CalleeName() const {
  if ((kind != Kind::kCall && kind != Kind::kNewObj) || callable == nullptr || callable->kind != Kind::kGlobal) {
    return "";
  }
  return absl::StrCat(callable->str, ".", callable->name);
}

const PickleValue* PickleValue::DictGet(absl::string_view key) const {
  if (kind != Kind::kDict) return nullptr;
  // The last occurrence wins, as in a Python dict built by SETITEM(S).
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->first->kind == Kind::kString && it->first->str == key) return it->second;
  }
  return nullptr;
}

std::string PickleDebugString(const PickleValue* v, int max_depth) {
  if (v == nullptr) return "<null>";
  if (max_depth <= 0) return "...";
  auto join = [&](const std::vector<PickleValue*>& items) {
    std::vector<std::string> parts;
    for (size_t i = 0; i < items.size() && i < 8; ++i) parts.push_back(PickleDebugString(items[i], max_depth - 1));
    if (items.size() > 8) parts.push_back("...");
    return absl::StrJoin(parts, ", ");
  };
  switch (v->kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return v->b ? "True" : "False";
    case Kind::kInt: return absl::StrCat(v->i);
    case Kind::kFloat: return absl::StrCat(v->f);
    case Kind::kString: return absl::StrCat("'", v->str.substr(0, 80), v->str.size() > 80 ? "..." : "", "'");
    case Kind::kBytes: return absl::StrCat("b<", v->str.size(), " bytes>");
    case Kind::kTuple: return absl::StrCat("(", join(v->items), v->items.size() == 1 ? ",)" : ")");
    case Kind::kList: return absl::StrCat("[", join(v->items), "]");
    case Kind::kSet: return absl::StrCat("{", join(v->items), "}");
    case Kind::kDict: return absl::StrCat("{<", v->entries.size(), " items>}");
    case Kind::kGlobal: return absl::StrCat(v->str, ".", v->name);
    case Kind::kCall:
    case Kind::kNewObj:
      return absl::StrCat(PickleDebugString(v->callable, max_depth - 1), v->kind == Kind::kNewObj ? ".__new__" : "",
                          PickleDebugString(v->args, max_depth - 1));
    case Kind::kPersistentId: return absl::StrCat("persistent_id", join(v->items));
  }
  return "?";
}

class Unpickler {
 public:
  Unpickler(absl::string_view data, const UnpickleOptions& options)
      : data_(data),
        opts_(options),
        max_memory_(options.max_memory_bytes != 0
                        ? options.max_memory_bytes
                        : UnpickleOptions::kMemoryPerInputByte * data.size() + UnpickleOptions::kMemorySlack) {}

  absl::StatusOr<std::unique_ptr<PickleDocument>> Run();

 private:
  // Counts `bytes` against the memory cap; the first charge past it fails the document.
  absl::Status Charge(uint64_t bytes) {
    doc_->memory_bytes_ += bytes;
    if (doc_->memory_bytes_ > max_memory_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          opts_.source, ": pickle needs more than ", max_memory_, " bytes of memory for a ", data_.size(),
          "-byte input (at offset ", op_pos_, "); refusing it"));
    }
    return absl::OkStatus();
  }
  // A new value, charged; nullptr (with `memory_status_` set) past the cap.
  PickleValue* New(Kind kind) {
    if (absl::Status s = Charge(sizeof(PickleValue)); !s.ok()) {
      memory_status_ = s;
      return nullptr;
    }
    doc_->arena_.emplace_back();
    doc_->arena_.back().kind = kind;
    return &doc_->arena_.back();
  }
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(opts_.source, ": pickle opcode at offset ", op_pos_, ": ", what));
  }
  absl::Status Need(size_t n) const {
    if (data_.size() - pos_ < n) {
      return absl::InvalidArgumentError(absl::StrCat(opts_.source, ": pickle truncated at offset ", pos_,
                                                     " (needs ", n, " more bytes, has ", data_.size() - pos_, ")"));
    }
    return absl::OkStatus();
  }
  template <typename T>
  absl::StatusOr<T> ReadLE() {
    absl::Status s = Need(sizeof(T));
    if (!s.ok()) return s;
    T v;
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  absl::StatusOr<absl::string_view> ReadBytes(uint64_t n) {
    if (n > opts_.max_string_bytes) return Error(absl::StrCat("string of ", n, " bytes exceeds the limit"));
    absl::Status s = Need(n);
    if (!s.ok()) return s;
    absl::string_view v = data_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  absl::StatusOr<absl::string_view> ReadLine() {
    size_t nl = data_.find('\n', pos_);
    if (nl == absl::string_view::npos) return Error("unterminated line");
    absl::string_view v = data_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return v;
  }
  absl::Status Push(PickleValue* v) {
    if (v == nullptr) return memory_status_;  // New() ran past the memory cap
    if (stack_.size() >= opts_.max_stack) return Error("stack too deep");
    stack_.push_back(v);
    return absl::OkStatus();
  }
  absl::StatusOr<PickleValue*> Pop() {
    if (stack_.size() <= FrameBase()) return Error("stack underflow");
    PickleValue* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  size_t FrameBase() const { return marks_.empty() ? 0 : marks_.back(); }
  // Pops everything above the last MARK.
  // The popped values go into a container: their slots are charged.
  absl::StatusOr<std::vector<PickleValue*>> PopMark() {
    if (marks_.empty()) return Error("no MARK on the stack");
    size_t base = marks_.back();
    if (absl::Status s = Charge((stack_.size() - base) * sizeof(PickleValue*)); !s.ok()) return s;
    marks_.pop_back();
    std::vector<PickleValue*> items(stack_.begin() + base, stack_.end());
    stack_.resize(base);
    return items;
  }
  absl::Status MemoPut(uint64_t idx) {
    if (stack_.size() <= FrameBase()) return Error("memo put on an empty stack");
    if (idx >= opts_.max_memo) return Error(absl::StrCat("memo index ", idx, " exceeds the limit"));
    if (absl::Status s = Charge(kMemoEntryBytes); !s.ok()) return s;
    memo_[idx] = stack_.back();
    return absl::OkStatus();
  }
  absl::Status MemoGet(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) return Error(absl::StrCat("memo index ", idx, " was never stored"));
    return Push(it->second);
  }
  absl::Status PushGlobal(absl::string_view module, absl::string_view name) {
    std::string full = absl::StrCat(module, ".", name);
    if (opts_.allowed_globals == nullptr || !opts_.allowed_globals->contains(full)) {
      return absl::InvalidArgumentError(
          absl::StrCat(opts_.source, ": pickle references global '", full,
                       "', which is not on the allow-list (refusing to load it; offset ", op_pos_, ")"));
    }
    PickleValue* g = New(Kind::kGlobal);
    if (g == nullptr) return memory_status_;
    g->str = std::string(module);
    g->name = std::string(name);
    return Push(g);
  }
  absl::Status PushInt(int64_t v) {
    PickleValue* p = New(Kind::kInt);
    if (p == nullptr) return memory_status_;
    p->i = v;
    return Push(p);
  }
  absl::Status PushLong(absl::string_view bytes) {
    if (bytes.size() > 8) return Error(absl::StrCat("integer of ", bytes.size(), " bytes is too large"));
    uint64_t u = 0;
    for (size_t k = 0; k < bytes.size(); ++k) u |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[k])) << (8 * k);
    if (!bytes.empty() && bytes.size() < 8 && (static_cast<uint8_t>(bytes.back()) & 0x80)) {
      u |= ~uint64_t{0} << (8 * bytes.size());  // sign-extend
    }
    return PushInt(static_cast<int64_t>(u));
  }
  absl::Status PushString(Kind kind, absl::string_view s) {
    PickleValue* p = New(kind);
    if (p == nullptr) return memory_status_;
    if (absl::Status st = Charge(s.size()); !st.ok()) return st;
    p->str = std::string(s);
    return Push(p);
  }
  // One opcode: Step asks each family of opcodes in turn, then refuses the opcode.
  absl::Status Step(uint8_t op, bool* stop);
  std::optional<absl::Status> StepStackOrMemo(uint8_t op, bool* stop);
  std::optional<absl::Status> StepNewContainer(uint8_t op);
  std::optional<absl::Status> StepFillContainer(uint8_t op);
  std::optional<absl::Status> StepObject(uint8_t op);
  std::optional<absl::Status> StepNumber(uint8_t op);
  std::optional<absl::Status> StepString(uint8_t op);
  absl::Status Refuse(uint8_t op);

  absl::string_view data_;
  const UnpickleOptions& opts_;
  std::unique_ptr<PickleDocument> doc_ = std::make_unique<PickleDocument>();
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
  uint64_t max_memory_;
  absl::Status memory_status_;
  static constexpr uint64_t kMemoEntryBytes = 48;  // an unordered_map node, roughly
};

absl::StatusOr<std::unique_ptr<PickleDocument>> Unpickler::Run() {
  bool stop = false;
  while (!stop) {
    op_pos_ = pos_;
    if (pos_ >= data_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(opts_.source, ": pickle truncated: no STOP opcode before the end (", data_.size(), " bytes)"));
    }
    uint8_t op = static_cast<uint8_t>(data_[pos_++]);
    absl::Status s = Step(op, &stop);
    if (!s.ok()) return s;
  }
  if (stack_.size() != 1 || !marks_.empty()) {
    return Error(absl::StrCat("STOP with ", stack_.size(), " values and ", marks_.size(), " marks on the stack"));
  }
  doc_->root_ = stack_.back();
  return std::move(doc_);
}

#define SC_PICKLE_TRY(expr)                   \
  do {                                        \
    ::absl::Status s_ = (expr);               \
    if (!s_.ok()) return s_;                  \
  } while (0)
#define SC_PICKLE_ASSIGN(lhs, expr)           \
  auto lhs##_or = (expr);                     \
  if (!lhs##_or.ok()) return lhs##_or.status(); \
  auto lhs = *lhs##_or

absl::Status Unpickler::Step(uint8_t op, bool* stop) {
  if (std::optional<absl::Status> s = StepStackOrMemo(op, stop)) return *std::move(s);
  if (std::optional<absl::Status> s = StepNewContainer(op)) return *std::move(s);
  if (std::optional<absl::Status> s = StepFillContainer(op)) return *std::move(s);
  if (std::optional<absl::Status> s = StepObject(op)) return *std::move(s);
  if (std::optional<absl::Status> s = StepNumber(op)) return *std::move(s);
  if (std::optional<absl::Status> s = StepString(op)) return *std::move(s);
  return Refuse(op);
}

// Protocol and frame headers, STOP, marks, POP/DUP and the memo. std::nullopt: not one of these opcodes.
std::optional<absl::Status> Unpickler::StepStackOrMemo(uint8_t op, bool* stop) {
  switch (op) {
    case 0x80: {  // PROTO
      SC_PICKLE_ASSIGN(proto, ReadLE<uint8_t>());
      if (proto < 2 || proto > 5) return Error(absl::StrCat("unsupported pickle protocol ", int{proto}));
      return absl::OkStatus();
    }
    case 0x95: {  // FRAME: a length hint only
      SC_PICKLE_ASSIGN(len, ReadLE<uint64_t>());
      (void)len;
      return absl::OkStatus();
    }
    case '.':  // STOP
      *stop = true;
      return absl::OkStatus();
    case '(':  // MARK
      if (marks_.size() >= opts_.max_stack) return Error("too many marks");
      marks_.push_back(stack_.size());
      return absl::OkStatus();
    case '0': {  // POP
      SC_PICKLE_ASSIGN(v, Pop());
      (void)v;
      return absl::OkStatus();
    }
    case '1': {  // POP_MARK
      SC_PICKLE_ASSIGN(v, PopMark());
      (void)v;
      return absl::OkStatus();
    }
    case '2': {  // DUP
      if (stack_.size() <= FrameBase()) return Error("DUP on an empty stack");
      return Push(stack_.back());
    }
    case 0x94:  // MEMOIZE
      return MemoPut(memo_.size());
    case 'q': {  // BINPUT
      SC_PICKLE_ASSIGN(idx, ReadLE<uint8_t>());
      return MemoPut(idx);
    }
    case 'r': {  // LONG_BINPUT
      SC_PICKLE_ASSIGN(idx, ReadLE<uint32_t>());
      return MemoPut(idx);
    }
    case 'h': {  // BINGET
      SC_PICKLE_ASSIGN(idx, ReadLE<uint8_t>());
      return MemoGet(idx);
    }
    case 'j': {  // LONG_BINGET
      SC_PICKLE_ASSIGN(idx, ReadLE<uint32_t>());
      return MemoGet(idx);
    }
    default:
      return std::nullopt;
  }
}

// Opcodes that push a new (empty or filled) tuple, list, dict or set. std::nullopt: not one of these opcodes.
std::optional<absl::Status> Unpickler::StepNewContainer(uint8_t op) {
  switch (op) {
    case '}': return Push(New(Kind::kDict));
    case ']': return Push(New(Kind::kList));
    case ')': return Push(New(Kind::kTuple));
    case 0x8f: return Push(New(Kind::kSet));  // EMPTY_SET
    case 't': {  // TUPLE
      SC_PICKLE_ASSIGN(items, PopMark());
      PickleValue* t = New(Kind::kTuple);
      if (t == nullptr) return memory_status_;
      t->items = std::move(items);
      return Push(t);
    }
    case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
      size_t n = op - 0x84;
      if (stack_.size() < FrameBase() + n) return Error(absl::StrCat("TUPLE", n, " needs ", n, " values"));
      PickleValue* t = New(Kind::kTuple);
      if (t == nullptr) return memory_status_;
      t->items.assign(stack_.end() - n, stack_.end());
      stack_.resize(stack_.size() - n);
      return Push(t);
    }
    case 0x91: {  // FROZENSET
      SC_PICKLE_ASSIGN(items, PopMark());
      PickleValue* t = New(Kind::kSet);
      if (t == nullptr) return memory_status_;
      t->items = std::move(items);
      return Push(t);
    }
    case 'l': {  // LIST (protocol 0/1 style, but harmless)
      SC_PICKLE_ASSIGN(items, PopMark());
      PickleValue* t = New(Kind::kList);
      if (t == nullptr) return memory_status_;
      t->items = std::move(items);
      return Push(t);
    }
    case 'd': {  // DICT
      SC_PICKLE_ASSIGN(items, PopMark());
      if (items.size() % 2) return Error("DICT with an odd number of items");
      PickleValue* t = New(Kind::kDict);
      if (t == nullptr) return memory_status_;
      for (size_t k = 0; k < items.size(); k += 2) t->entries.emplace_back(items[k], items[k + 1]);
      return Push(t);
    }
    default:
      return std::nullopt;
  }
}

// Opcodes that add items to the list, dict or set on top of the stack. std::nullopt: not one of these opcodes.
std::optional<absl::Status> Unpickler::StepFillContainer(uint8_t op) {
  switch (op) {
    case 's': {  // SETITEM
      SC_PICKLE_ASSIGN(value, Pop());
      SC_PICKLE_ASSIGN(key, Pop());
      if (stack_.size() <= FrameBase() || stack_.back()->kind != Kind::kDict) return Error("SETITEM target is not a dict");
      SC_PICKLE_TRY(Charge(2 * sizeof(PickleValue*)));
      stack_.back()->entries.emplace_back(key, value);
      return absl::OkStatus();
    }
    case 'u': {  // SETITEMS
      SC_PICKLE_ASSIGN(items, PopMark());
      if (items.size() % 2) return Error("SETITEMS with an odd number of items");
      if (stack_.size() <= FrameBase() || stack_.back()->kind != Kind::kDict) return Error("SETITEMS target is not a dict");
      for (size_t k = 0; k < items.size(); k += 2) stack_.back()->entries.emplace_back(items[k], items[k + 1]);
      return absl::OkStatus();
    }
    case 'a': {  // APPEND
      SC_PICKLE_ASSIGN(value, Pop());
      if (stack_.size() <= FrameBase() || stack_.back()->kind != Kind::kList) return Error("APPEND target is not a list");
      SC_PICKLE_TRY(Charge(sizeof(PickleValue*)));
      stack_.back()->items.push_back(value);
      return absl::OkStatus();
    }
    case 'e':     // APPENDS
    case 0x90: {  // ADDITEMS
      SC_PICKLE_ASSIGN(items, PopMark());
      Kind want = op == 'e' ? Kind::kList : Kind::kSet;
      if (stack_.size() <= FrameBase() || stack_.back()->kind != want) {
        return Error(op == 'e' ? "APPENDS target is not a list" : "ADDITEMS target is not a set");
      }
      auto& dst = stack_.back()->items;
      dst.insert(dst.end(), items.begin(), items.end());
      return absl::OkStatus();
    }
    default:
      return std::nullopt;
  }
}

// Globals (allow-listed), REDUCE/NEWOBJ calls, BUILD and persistent ids: inert nodes. std::nullopt: not one of these opcodes.
std::optional<absl::Status> Unpickler::StepObject(uint8_t op) {
  switch (op) {
    case 'c': {  // GLOBAL
      SC_PICKLE_ASSIGN(module, ReadLine());
      SC_PICKLE_ASSIGN(name, ReadLine());
      // Python 2 era names map to builtins, as pickle's fix_imports does.
      if (module == "__builtin__") module = "builtins";
      return PushGlobal(module, name);
    }
    case 0x93: {  // STACK_GLOBAL
      SC_PICKLE_ASSIGN(name, Pop());
      SC_PICKLE_ASSIGN(module, Pop());
      if (name->kind != Kind::kString || module->kind != Kind::kString) return Error("STACK_GLOBAL needs two strings");
      return PushGlobal(module->str, name->str);
    }
    case 'R':      // REDUCE
    case 0x81: {   // NEWOBJ
      SC_PICKLE_ASSIGN(args, Pop());
      SC_PICKLE_ASSIGN(callable, Pop());
      if (args->kind != Kind::kTuple) return Error(absl::StrCat(op == 'R' ? "REDUCE" : "NEWOBJ", " arguments are a ", PickleKindName(args->kind), ", not a tuple"));
      if (callable->kind != Kind::kGlobal) return Error(absl::StrCat(op == 'R' ? "REDUCE" : "NEWOBJ", " callable is a ", PickleKindName(callable->kind), ", not a global"));
      PickleValue* c = New(op == 'R' ? Kind::kCall : Kind::kNewObj);
      if (c == nullptr) return memory_status_;
      c->callable = callable;
      c->args = args;
      return Push(c);
    }
    case 'b': {  // BUILD
      SC_PICKLE_ASSIGN(state, Pop());
      if (stack_.size() <= FrameBase()) return Error("BUILD on an empty stack");
      PickleValue* obj = stack_.back();
      if (obj->kind != Kind::kCall && obj->kind != Kind::kNewObj) {
        return Error(absl::StrCat("BUILD target is a ", PickleKindName(obj->kind), ", not an object"));
      }
      if (obj->state != nullptr) return Error("BUILD applied twice to one object");
      obj->state = state;
      return absl::OkStatus();
    }
    case 'Q': {  // BINPERSID
      if (!opts_.allow_persistent_id) return Error("persistent ids (BINPERSID) are not allowed here");
      SC_PICKLE_ASSIGN(pid, Pop());
      PickleValue* p = New(Kind::kPersistentId);
      if (p == nullptr) return memory_status_;
      p->items.push_back(pid);
      return Push(p);
    }
    default:
      return std::nullopt;
  }
}

// None, booleans, ints, longs and floats. std::nullopt: not one of these opcodes.
std::optional<absl::Status> Unpickler::StepNumber(uint8_t op) {
  switch (op) {
    case 'N': return Push(New(Kind::kNone));
    case 0x88: case 0x89: {  // NEWTRUE / NEWFALSE
      PickleValue* p = New(Kind::kBool);
      if (p == nullptr) return memory_status_;
      p->b = op == 0x88;
      return Push(p);
    }
    case 'K': {  // BININT1
      SC_PICKLE_ASSIGN(v, ReadLE<uint8_t>());
      return PushInt(v);
    }
    case 'M': {  // BININT2
      SC_PICKLE_ASSIGN(v, ReadLE<uint16_t>());
      return PushInt(v);
    }
    case 'J': {  // BININT
      SC_PICKLE_ASSIGN(v, ReadLE<int32_t>());
      return PushInt(v);
    }
    case 0x8a: {  // LONG1
      SC_PICKLE_ASSIGN(n, ReadLE<uint8_t>());
      SC_PICKLE_ASSIGN(bytes, ReadBytes(n));
      return PushLong(bytes);
    }
    case 0x8b: {  // LONG4
      SC_PICKLE_ASSIGN(n, ReadLE<int32_t>());
      if (n < 0) return Error("negative LONG4 length");
      SC_PICKLE_ASSIGN(bytes, ReadBytes(static_cast<uint64_t>(n)));
      return PushLong(bytes);
    }
    case 'G': {  // BINFLOAT: big-endian IEEE double
      SC_PICKLE_ASSIGN(raw, ReadBytes(8));
      uint64_t u = 0;
      for (char c : raw) u = (u << 8) | static_cast<uint8_t>(c);
      PickleValue* p = New(Kind::kFloat);
      if (p == nullptr) return memory_status_;
      std::memcpy(&p->f, &u, 8);
      return Push(p);
    }
    default:
      return std::nullopt;
  }
}

// Text and byte strings. std::nullopt: not one of these opcodes.
std::optional<absl::Status> Unpickler::StepString(uint8_t op) {
  switch (op) {
    case 0x8c: {  // SHORT_BINUNICODE
      SC_PICKLE_ASSIGN(n, ReadLE<uint8_t>());
      SC_PICKLE_ASSIGN(s, ReadBytes(n));
      return PushString(Kind::kString, s);
    }
    case 'X': {  // BINUNICODE
      SC_PICKLE_ASSIGN(n, ReadLE<uint32_t>());
      SC_PICKLE_ASSIGN(s, ReadBytes(n));
      return PushString(Kind::kString, s);
    }
    case 0x8d: {  // BINUNICODE8
      SC_PICKLE_ASSIGN(n, ReadLE<uint64_t>());
      SC_PICKLE_ASSIGN(s, ReadBytes(n));
      return PushString(Kind::kString, s);
    }
    case 'U': {  // SHORT_BINSTRING (Python 2 str: treat as text)
      SC_PICKLE_ASSIGN(n, ReadLE<uint8_t>());
      SC_PICKLE_ASSIGN(s, ReadBytes(n));
      return PushString(Kind::kString, s);
    }
    case 'T': {  // BINSTRING
      SC_PICKLE_ASSIGN(n, ReadLE<int32_t>());
      if (n < 0) return Error("negative BINSTRING length");
      SC_PICKLE_ASSIGN(s, ReadBytes(static_cast<uint64_t>(n)));
      return PushString(Kind::kString, s);
    }
    case 'C': {  // SHORT_BINBYTES
      SC_PICKLE_ASSIGN(n, ReadLE<uint8_t>());
      SC_PICKLE_ASSIGN(s, ReadBytes(n));
      return PushString(Kind::kBytes, s);
    }
    case 'B': {  // BINBYTES
      SC_PICKLE_ASSIGN(n, ReadLE<uint32_t>());
      SC_PICKLE_ASSIGN(s, ReadBytes(n));
      return PushString(Kind::kBytes, s);
    }
    case 0x8e: {  // BINBYTES8
      SC_PICKLE_ASSIGN(n, ReadLE<uint64_t>());
      SC_PICKLE_ASSIGN(s, ReadBytes(n));
      return PushString(Kind::kBytes, s);
    }
    default:
      return std::nullopt;
  }
}
// Opcodes no family knows: refused by name (known but not allowed) or as unknown.
absl::Status Unpickler::Refuse(uint8_t op) {
  switch (op) {
    // Known opcodes that this reader refuses on purpose.
    case 'i': return Error("opcode INST is not allowed (it instantiates arbitrary classes)");
    case 'o': return Error("opcode OBJ is not allowed (it instantiates arbitrary classes)");
    case 0x92: return Error("opcode NEWOBJ_EX is not supported");
    case 'P': return Error("opcode PERSID (text persistent id) is not supported");
    case 0x82: case 0x83: case 0x84: return Error("opcode EXT1/EXT2/EXT4 (extension registry) is not supported");
    case 0x96: return Error("opcode BYTEARRAY8 is not supported");
    case 0x97: case 0x98: return Error("out-of-band buffers (NEXT_BUFFER/READONLY_BUFFER) are not supported");
    case 'I': case 'L': case 'F': case 'S': case 'V': case 'g': case 'p':
      return Error(absl::StrFormat("protocol-0 text opcode '%c' is not supported", op));
    default:
      return Error(absl::StrFormat("unknown opcode 0x%02x", op));
  }
}

absl::StatusOr<std::unique_ptr<PickleDocument>> Unpickle(absl::string_view data, const UnpickleOptions& options) {
  return Unpickler(data, options).Run();
}

}  // namespace shardcast
