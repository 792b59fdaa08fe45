#include "common/dtype.h"

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(DType, NamesRoundTripAndSizes) {
  for (DType d : {DType::kFloat64, DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat8E4M3FN,
                  DType::kFloat8E5M2, DType::kFloat8E4M3FNUZ, DType::kFloat8E5M2FNUZ, DType::kInt8, DType::kInt16,
                  DType::kInt32, DType::kInt64, DType::kUInt8, DType::kUInt16, DType::kUInt32, DType::kUInt64,
                  DType::kBool, DType::kComplex64, DType::kComplex128}) {
    auto back = DTypeFromName(DTypeName(d));
    ASSERT_TRUE(back.ok()) << DTypeName(d);
    EXPECT_EQ(*back, d);
  }
  EXPECT_EQ(ItemSize(DType::kBFloat16), 2u);
  EXPECT_EQ(ItemSize(DType::kComplex128), 16u);
  EXPECT_EQ(ItemSize(DType::kFloat8E4M3FN), 1u);
  EXPECT_EQ(*DTypeFromName("bf16"), DType::kBFloat16);
  EXPECT_FALSE(DTypeFromName("float4_e2m1fn_x2").ok());
}

TEST(DType, LegacyStorageClasses) {
  EXPECT_EQ(*DTypeFromStorageClass("BFloat16Storage"), DType::kBFloat16);
  EXPECT_EQ(*DTypeFromStorageClass("LongStorage"), DType::kInt64);
  EXPECT_EQ(*DTypeFromStorageClass("ComplexFloatStorage"), DType::kComplex64);
  EXPECT_FALSE(DTypeFromStorageClass("QInt8Storage").ok());
  EXPECT_FALSE(DTypeFromStorageClass("UntypedStorage").ok());
}

}  // namespace
}  // namespace shardcast
