// Negative case of ci/ascendc_check.sh: a pipe pair HardEvent does not have (there is no MTE4).
// expect: 'V_MTE4' is not a member of 'AscendC::HardEvent'
#include "scaffold.h"

extern "C" __global__ __aicore__ void hard_event(GM_ADDR x) {
  Scaffold s(x);
#ifdef MXDCN_FIXED
  event_t ev = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::V_MTE3));
  SetFlag<HardEvent::V_MTE3>(ev);
#else
  event_t ev = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::V_MTE4));
  SetFlag<HardEvent::V_MTE4>(ev);
#endif
}
