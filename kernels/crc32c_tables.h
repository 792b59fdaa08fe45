// The tables of the GPU CRC32C (kernels/crc32c_math.h's Tables), built on the host once from
// common/crc32c: slicing-by-8, shift_P as byte tables, shift_{2^j} as GF(2) matrices.
#ifndef SHARDCAST_KERNELS_CRC32C_TABLES_H_
#define SHARDCAST_KERNELS_CRC32C_TABLES_H_

#include "kernels/crc32c_math.h"

namespace shardcast {

// Built on first use (thread-safe), then shared.
const crc32c_math::Tables& DeviceCrc32cTables();

}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_CRC32C_TABLES_H_
