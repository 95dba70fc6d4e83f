#include "../src/stats.h"

int main() {
    const std::string text =
        "The precompiled header is parsed once. Every unit of the target uses it! "
        "The header holds the standard headers the units share; the units hold the code.";
    const auto words = stats::words(text);
    std::cout << words.size() << " words, " << stats::sentences(text) << " sentences, mean length "
              << std::fixed << std::setprecision(2) << stats::mean_length(words) << ", longest \""
              << stats::longest(words) << "\", " << stats::letters(words).size() << " letters\n"
              << stats::format(stats::top(stats::frequencies(words), 3));
}
