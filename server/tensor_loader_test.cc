// TensorLoader on the shared vit_tp2 fixture: straight into host memory, and through the staging
// pipeline of a device space (a host-backed fake that says it is a device, with staging buffers
// smaller than the largest tensor so that tensors go in dim-0 slabs); both give the bytes a plain
// read gives, in one allocation.
#include "server/tensor_loader.h"

#include <algorithm>
#include <string>

#include "checkpoint/test_fixtures.h"
#include "common/status_testutil.h"
#include "gtest/gtest.h"
#include "server/fake_device_space.h"

namespace shardcast {
namespace {

class TensorLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SC_ASSERT_OK_AND_ASSIGN(reader_, CheckpointReader::Open(testing::FixturePath("dcp-torch2.11/vit_tp2")));
    for (const TensorEntry& t : reader_->metadata().tensors) all_.push_back(&t);
  }
  // Every loaded tensor equals a plain read of it.
  void ExpectLoaded(const TensorLoader& loader) {
    for (const TensorEntry* t : all_) {
      std::string want(t->nbytes(), '\0');
      ASSERT_TRUE(reader_->Read({BoxRead{t, FullBox(t->shape), want.data()}}).ok());
      ASSERT_NE(loader.data(t), nullptr) << t->key;
      EXPECT_EQ(std::string(static_cast<const char*>(loader.data(t)), t->nbytes()), want) << t->key;
      EXPECT_GE(static_cast<const char*>(loader.data(t)), static_cast<const char*>(loader.allocation()));
    }
  }
  std::unique_ptr<CheckpointReader> reader_;
  std::vector<const TensorEntry*> all_;
};

TEST_F(TensorLoaderTest, OwnedByPicksTheRanksEntries) {
  const std::vector<int> owners = {1, 0, 1};
  const std::vector<const TensorEntry*> three(all_.begin(), all_.begin() + 3);
  EXPECT_EQ(TensorLoader::OwnedBy(three, owners, 1), (std::vector<const TensorEntry*>{all_[0], all_[2]}));
  EXPECT_EQ(TensorLoader::TotalBytes({all_[0], all_[2]}), all_[0]->nbytes() + all_[2]->nbytes());
}

TEST_F(TensorLoaderTest, HostMemoryIsReadStraightIntoPlace) {
  std::unique_ptr<MemorySpace> host = NewHostMemorySpace();
  TensorLoader loader(reader_.get(), host.get(), /*staging_bytes=*/1024);
  SC_ASSERT_OK(loader.Load(all_));
  ExpectLoaded(loader);
}

TEST_F(TensorLoaderTest, ADeviceIsFilledThroughTwoStagingBuffersInSlabs) {
  uint64_t largest = 0, largest_row = 0;
  for (const TensorEntry* t : all_) {
    largest = std::max(largest, t->nbytes());
    if (!t->shape.empty()) largest_row = std::max<uint64_t>(largest_row, t->nbytes() / std::max<int64_t>(1, t->shape[0]));
  }
  const uint64_t staging = std::max(largest_row, largest / 3);  // the largest tensor takes several slabs
  ASSERT_LT(staging, largest);
  FakeDeviceSpace device;
  TensorLoader loader(reader_.get(), &device, staging);
  SC_ASSERT_OK(loader.Load(all_));
  ExpectLoaded(loader);
  EXPECT_EQ(device.allocations, 1);  // one slab for every tensor
  EXPECT_EQ(device.staging_sizes, (std::vector<size_t>{staging, staging}));
  EXPECT_GT(device.copies_in, static_cast<int>(all_.size()));  // some tensors went in pieces
}

// Progress: payload bytes only, rising step by step (several batches), ending at the total.
void ExpectProgressSteps(const std::vector<uint64_t>& steps, uint64_t total) {
  ASSERT_GT(steps.size(), 1u);
  for (size_t i = 1; i < steps.size(); ++i) EXPECT_GT(steps[i], steps[i - 1]);
  EXPECT_EQ(steps.back(), total);
}

TEST_F(TensorLoaderTest, HostProgressCountsPayloadBytesInBatches) {
  std::unique_ptr<MemorySpace> host = NewHostMemorySpace();
  TensorLoader loader(reader_.get(), host.get(), /*staging_bytes=*/1024);
  std::vector<uint64_t> steps;
  loader.set_on_progress([&](uint64_t done) { steps.push_back(done); });
  EXPECT_EQ(loader.done_bytes(), 0u);
  SC_ASSERT_OK(loader.Load(all_));
  ExpectProgressSteps(steps, TensorLoader::TotalBytes(all_));
  EXPECT_EQ(loader.done_bytes(), TensorLoader::TotalBytes(all_));
  // The reader read more than the payload (record heads and tails): not counted as progress.
  EXPECT_GT(reader_->bytes_read(), loader.done_bytes());
  ExpectLoaded(loader);
}

TEST_F(TensorLoaderTest, DeviceProgressCountsEveryStagedPiece) {
  uint64_t largest_row = 0;
  for (const TensorEntry* t : all_) {
    if (!t->shape.empty()) largest_row = std::max<uint64_t>(largest_row, t->nbytes() / std::max<int64_t>(1, t->shape[0]));
  }
  FakeDeviceSpace device;
  TensorLoader loader(reader_.get(), &device, std::max<uint64_t>(largest_row, 4096));
  std::vector<uint64_t> steps;
  loader.set_on_progress([&](uint64_t done) { steps.push_back(done); });
  SC_ASSERT_OK(loader.Load(all_));
  ExpectProgressSteps(steps, TensorLoader::TotalBytes(all_));
}

TEST_F(TensorLoaderTest, ARowLargerThanTheStagingBufferIsRefused) {
  FakeDeviceSpace device;
  TensorLoader loader(reader_.get(), &device, /*staging_bytes=*/8);
  absl::Status s = loader.Load(all_);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("exceeds the staging buffer"), std::string::npos) << s;
}

}  // namespace
}  // namespace shardcast
