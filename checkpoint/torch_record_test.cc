// torch.save records built by hand: stride normalization of size-1 dims (a fuzzer finding: an
// unbounded stride there overflowed the copy loops), byte order, and the view checks.
#include "checkpoint/torch_record.h"

#include <cstring>

#include "checkpoint/region_copy.h"
#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

using namespace std::string_literals;

void Put16(std::string* s, uint16_t v) { s->append(reinterpret_cast<const char*>(&v), 2); }
void Put32(std::string* s, uint32_t v) { s->append(reinterpret_cast<const char*>(&v), 4); }

// A stored ZIP (no data descriptors, as Python's zipfile writes it) of the given entries.
std::string StoredZip(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out, cd;
  for (const auto& [name, data] : files) {
    Put32(&cd, 0x02014B50); Put16(&cd, 20); Put16(&cd, 20); Put16(&cd, 0); Put16(&cd, 0); Put16(&cd, 0); Put16(&cd, 0);
    Put32(&cd, 0); Put32(&cd, data.size()); Put32(&cd, data.size()); Put16(&cd, name.size()); Put16(&cd, 0);
    Put16(&cd, 0); Put16(&cd, 0); Put16(&cd, 0); Put32(&cd, 0); Put32(&cd, out.size());
    cd += name;
    Put32(&out, 0x04034B50); Put16(&out, 20); Put16(&out, 0); Put16(&out, 0); Put16(&out, 0); Put16(&out, 0);
    Put32(&out, 0); Put32(&out, data.size()); Put32(&out, data.size()); Put16(&out, name.size()); Put16(&out, 0);
    out += name + data;
  }
  const uint32_t cd_off = out.size();
  out += cd;
  Put32(&out, 0x06054B50); Put16(&out, 0); Put16(&out, 0); Put16(&out, files.size()); Put16(&out, files.size());
  Put32(&out, cd.size()); Put32(&out, cd_off); Put16(&out, 0);
  return out;
}

// BINUNICODE: 'X', u32 length, bytes.
std::string Str(const std::string& s) {
  std::string out = "X";
  Put32(&out, static_cast<uint32_t>(s.size()));
  return out + s;
}

// A float32 record over 4 elements: _rebuild_tensor_v2(storage, 0, size, stride, False, None).
std::string FloatRecord(const std::string& size_ops, const std::string& stride_ops, const std::string& byteorder = "") {
  const std::string pkl = "\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n(("s + Str("storage") +
                          "ctorch\nFloatStorage\n"s + Str("0") + Str("cpu") + "K\x04tQK\x00("s + size_ops + "t("s +
                          stride_ops + "tNNtR."s;
  std::string data;
  for (float f : {1.0f, 2.0f, 3.0f, 4.0f}) data.append(reinterpret_cast<const char*>(&f), 4);
  std::vector<std::pair<std::string, std::string>> files{{"archive/data.pkl", pkl}, {"archive/data/0", data}};
  if (!byteorder.empty()) files.push_back({"archive/byteorder", byteorder});
  return StoredZip(files);
}

std::string Long8(int64_t v) { return "\x8a\x08"s + std::string(reinterpret_cast<const char*>(&v), 8); }

TEST(ParseTensorRecord, HugeStrideOnSizeOneDimIsNormalized) {
  // size (2, 1, 2), stride (1, 2^63-1, 2): the middle stride never moves the address.
  const std::string rec = FloatRecord("K\x02K\x01K\x02"s, "K\x01"s + Long8(INT64_MAX) + "K\x02"s);
  StringRecordSource src(rec);
  SC_ASSERT_OK_AND_ASSIGN(TensorRecord r, ParseTensorRecord(src, "test"));
  EXPECT_EQ(r.shape, (Shape{2, 1, 2}));
  EXPECT_EQ(r.strides, (Shape{1, 2, 2}));
  // The copy out of it is the transposed 2x2 view: [[1, 3], [2, 4]].
  const Box box = FullBox(r.shape);
  StridedChunk sc{&box, &r.strides, r.storage_offset};
  float out[4];
  CopyRegion(sc, rec.data() + r.data_offset, 0, box, reinterpret_cast<char*>(out), box, 4, false);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 3.0f);
  EXPECT_EQ(out[2], 2.0f);
  EXPECT_EQ(out[3], 4.0f);
}

TEST(ParseTensorRecord, ViewPastTheStorageIsRefused) {
  const std::string rec = FloatRecord("K\x02K\x02"s, "K\x02K\x02"s);  // reaches element 4 of 4
  StringRecordSource src(rec);
  auto r = ParseTensorRecord(src, "test");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("reaches element 4 but the storage holds 4"), std::string::npos) << r.status();
}

TEST(ParseTensorRecord, ByteOrder) {
  {
    const std::string rec = FloatRecord("K\x04"s, "K\x01"s, "big");
    StringRecordSource src(rec);
    SC_ASSERT_OK_AND_ASSIGN(TensorRecord r, ParseTensorRecord(src, "test"));
    EXPECT_TRUE(r.big_endian);
  }
  {
    const std::string rec = FloatRecord("K\x04"s, "K\x01"s, std::string(40, 'x'));
    StringRecordSource src(rec);
    EXPECT_FALSE(ParseTensorRecord(src, "test").ok());  // an oversized byteorder entry is refused
  }
}

}  // namespace
}  // namespace shardcast
