// backend/dispatch.cc beyond the compute ops (those are the OpsDispatch/* suites of the other
// files): device memory and copies on every backend, and a device that cannot run here.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "backend/ops.h"
#include "core/error.h"

namespace zoft::testing {
namespace {

class Dispatch : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (!ops::available(GetParam()))
      GTEST_SKIP() << device_name(GetParam()) << ": " << ops::unavailable_reason(GetParam());
  }
};

TEST_P(Dispatch, UploadCopyRowsDownloadRoundTrip) {
  const Device d = GetParam();
  std::vector<float> host(6 * 8);
  std::iota(host.begin(), host.end(), 1.0f);
  DeviceBuffer a(d, host.size() * sizeof(float)), b(d, host.size() * sizeof(float));
  EXPECT_EQ(a.device(), d);
  ops::upload(d, a.data(), host.data(), host.size() * sizeof(float));
  ops::copy(d, b.data(), a.data(), host.size() * sizeof(float));
  // Columns [2, 5) of the [6, 8] matrix into a packed [6, 3] one.
  DeviceBuffer cols(d, 6 * 3 * sizeof(float));
  ops::copy_rows(d, cols.data(), 3 * sizeof(float), b.as<float>() + 2, 8 * sizeof(float),
                 3 * sizeof(float), 6);
  std::vector<float> back(6 * 3);
  ops::download(d, back.data(), cols.data(), back.size() * sizeof(float));
  for (int r = 0; r < 6; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(back[size_t(r * 3 + c)], host[size_t(r * 8 + 2 + c)]);
  ops::synchronize(d);
}

TEST_P(Dispatch, OpsRunWhereTheirWeightIs) {
  const Device d = GetParam();
  // y = x W^T with W = [[1, 2], [3, 4]] (f32), x = [1, 1]: y = [3, 7].
  const float w_host[4] = {1, 2, 3, 4}, x_host[2] = {1, 1};
  DeviceBuffer w(d, sizeof(w_host)), x(d, sizeof(x_host)), y(d, 2 * sizeof(float));
  ops::upload(d, w.data(), w_host, sizeof(w_host));
  ops::upload(d, x.data(), x_host, sizeof(x_host));
  Tensor weight(w.data(), DType::F32, {2, 2});
  weight.device = d;
  ops::linear(x.as<float>(), 1, 2, weight, false, nullptr, y.as<float>());
  float got[2];
  ops::download(d, got, y.data(), sizeof(got));
  EXPECT_EQ(got[0], 3.0f);
  EXPECT_EQ(got[1], 7.0f);
}

INSTANTIATE_TEST_SUITE_P(OpsDispatch, Dispatch, ::testing::Values(Device::CPU, Device::CUDA),
                         [](const ::testing::TestParamInfo<Device>& info) {
                           return std::string(device_name(info.param));
                         });

TEST(OpsDispatchDevice, NamesAndAnUnavailableDevice) {
  EXPECT_EQ(parse_device("cpu"), Device::CPU);
  EXPECT_EQ(parse_device("cuda"), Device::CUDA);
  EXPECT_THROW(parse_device("tpu"), Error);
  EXPECT_TRUE(ops::available(Device::CPU));
  EXPECT_STREQ(ops::unavailable_reason(Device::CPU), "");
  if (ops::available(Device::CUDA)) GTEST_SKIP() << "a GPU is present";
  EXPECT_STRNE(ops::unavailable_reason(Device::CUDA), "");
  EXPECT_THROW(DeviceBuffer(Device::CUDA, 64), Error);  // one clear error, not a crash
}

}  // namespace
}  // namespace zoft::testing
