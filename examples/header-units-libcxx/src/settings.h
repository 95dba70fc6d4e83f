#pragma once
#define SORTED_DESCENDING 1
