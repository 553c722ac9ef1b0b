// detail/declares.hpp: declares_NAME<C> answers "does C, or a base of C, declare anything named NAME?"
// whatever the member is (function, template, overload set, data member, type), for final classes
// too, and independently of whether the member is callable as a slot would call it.

#include <trainpp/detail/declares.hpp>

#include <doctest/doctest.h>

#include <string>

namespace declares_test {

using trainpp::detail::declares_on_log;
using trainpp::detail::declares_on_save;
using trainpp::detail::declares_state;
using trainpp::detail::declares_training_step;

struct Empty {};
struct Function {
  void on_log(int) {}
};
struct DataMember {
  int on_log = 0;
};
struct MemberTemplate {
  template <class T>
  void on_log(T) {}
};
struct Overloads {
  void on_log(int) {}
  void on_log(const std::string&) {}
};
struct StaticFunction {
  static void on_log() {}
};
struct TypeMember {
  using on_log = int;
};
struct Private {
 private:
  void on_log() {}
};
struct Base {
  void on_log() {}
};
struct Derived : Base {};
struct DerivedTwice : Derived {};
struct OtherBase {
  void on_log(double) {}
};
struct TwoBases : Base, OtherBase {};  // on_log is ambiguous in TwoBases itself: still declared

struct FinalFunction final {
  void on_log() {}
};
struct FinalDataMember final {
  int on_log = 0;
};
struct FinalInherits final : Derived {};
struct FinalWithout final {
  void on_save() {}
};

TEST_CASE("declares: any kind of member of the name counts, callable or not") {
  static_assert(declares_on_log<Function>);
  static_assert(declares_on_log<DataMember>);
  static_assert(declares_on_log<MemberTemplate>);
  static_assert(declares_on_log<Overloads>);
  static_assert(declares_on_log<StaticFunction>);
  static_assert(declares_on_log<TypeMember>);
  CHECK(declares_on_log<Function>);
  CHECK(declares_on_log<DataMember>);
  CHECK(declares_on_log<MemberTemplate>);
  CHECK(declares_on_log<Overloads>);
  CHECK(declares_on_log<StaticFunction>);
  CHECK(declares_on_log<TypeMember>);
  // A private member is declared too: the slot checks then report it as not callable, rather than
  // skipping it as absent.
  static_assert(declares_on_log<Private>);
  CHECK(declares_on_log<Private>);
}

TEST_CASE("declares: a class without the name, or with other names only, does not declare it") {
  static_assert(!declares_on_log<Empty>);
  static_assert(!declares_on_save<Function>);
  static_assert(!declares_state<Overloads>);
  static_assert(!declares_training_step<DataMember>);
  CHECK_FALSE(declares_on_log<Empty>);
  CHECK_FALSE(declares_on_save<Function>);
  CHECK_FALSE(declares_state<Overloads>);
  CHECK_FALSE(declares_training_step<DataMember>);
  // A lambda's closure type is a class whose only member is its call operator.
  const auto lambda = [](int) {};
  static_assert(!declares_on_log<decltype(lambda)>);
  CHECK_FALSE(declares_on_log<decltype(lambda)>);
}

TEST_CASE("declares: members inherited from a base, at any depth or from several bases, count") {
  static_assert(declares_on_log<Derived>);
  static_assert(declares_on_log<DerivedTwice>);
  static_assert(declares_on_log<TwoBases>);
  static_assert(!declares_on_save<DerivedTwice>);
  CHECK(declares_on_log<Derived>);
  CHECK(declares_on_log<DerivedTwice>);
  CHECK(declares_on_log<TwoBases>);
  CHECK_FALSE(declares_on_save<DerivedTwice>);
}

// A final class cannot be derived from: the concept answers it with &C::NAME instead of the probe.
TEST_CASE("declares: final classes, which cannot be derived from, are answered too") {
  static_assert(declares_on_log<FinalFunction>);
  static_assert(declares_on_log<FinalDataMember>);
  static_assert(declares_on_log<FinalInherits>);
  static_assert(!declares_on_log<FinalWithout>);
  static_assert(declares_on_save<FinalWithout>);
  CHECK(declares_on_log<FinalFunction>);
  CHECK(declares_on_log<FinalDataMember>);
  CHECK(declares_on_log<FinalInherits>);
  CHECK_FALSE(declares_on_log<FinalWithout>);
  CHECK(declares_on_save<FinalWithout>);
}

TEST_CASE("declares: a type that is not a class declares nothing") {
  static_assert(!declares_on_log<int>);
  static_assert(!declares_on_log<Function*>);
  static_assert(!declares_on_log<Function&>);
  static_assert(!declares_on_log<void>);
  CHECK_FALSE(declares_on_log<int>);
  CHECK_FALSE(declares_on_log<Function*>);
  CHECK_FALSE(declares_on_log<Function&>);
  CHECK_FALSE(declares_on_log<void>);
}

}  // namespace declares_test
