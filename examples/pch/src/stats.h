#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace stats {
std::vector<std::string> words(const std::string& text);
std::map<std::string, std::size_t> frequencies(const std::vector<std::string>& words);
std::vector<std::pair<std::string, std::size_t>> top(const std::map<std::string, std::size_t>& f, std::size_t n);
double mean_length(const std::vector<std::string>& words);
std::size_t sentences(const std::string& text);
std::string longest(const std::vector<std::string>& words);
std::string format(const std::vector<std::pair<std::string, std::size_t>>& rows);
std::set<char> letters(const std::vector<std::string>& words);
}  // namespace stats
